"""The corpus of the differential fidelity replay (hack/fidelity.py): API interactions in the shapes the controller
and kubectl send, and the contract points the sandbox claims to keep.

Each case is an async function of (recorder, namespace) that talks to one API server; it runs once against the
sandbox and once against the real kube-apiserver, in a fresh namespace of the same name on each. ``critical`` marks
the points the controller or a user's kubectl depends on: those must agree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fidelity_wire import Recorder

CaseFn = Callable[[Recorder, str], Awaitable[None]]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
GW = "/apis/gateway.networking.k8s.io/v1"
FLAGGER = "/apis/flagger.app/v1beta1"
GC_WAIT = 40.0
ROOT_CA = "kube-root-ca.crt"


@dataclass(frozen=True)
class Case:
    """One interaction sequence of the corpus."""

    name: str
    point: str
    critical: bool
    run: CaseFn


CASES: list[Case] = []
AGREED = frozenset({
    "stale_update", "unconditional_update", "status_and_generation", "schema_errors", "defaulting", "cel_rules",
    "tables", "watch_from_version", "bookmarks", "leases", "delete_answers", "create_get_errors", "merge_patch",
    "list_pagination",
})
"""Cases the sandbox answers exactly as kube-apiserver does (tests/real/test_real_fidelity.py keeps them so)."""


def case(point: str, critical: bool = True) -> Callable[[CaseFn], CaseFn]:
    """Register a case under its function's name."""
    def register(fn: CaseFn) -> CaseFn:
        CASES.append(Case(fn.__name__, point, critical, fn))
        return fn
    return register


# -- manifests --------------------------------------------------------------------------------------------------


def configmap(ns: str, name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A ConfigMap."""
    meta: dict[str, Any] = {"name": name, "namespace": ns, **extra}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def secret(ns: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An Opaque Secret: listing and watching cases use Secrets, since kube-controller-manager puts a
    kube-root-ca.crt ConfigMap into every namespace of a real cluster (and no Secret)."""
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": {"k": "dg=="}}


def deployment(ns: str, name: str = "web", containers: int = 1) -> dict[str, Any]:
    """A Deployment with ``containers`` containers and an env list."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": f"c{i}", "image": f"example/c{i}:1",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"name": "http", "containerPort": 8080 + i}]}
                    for i in range(containers)
                ]},
            },
        },
    }


def canary(ns: str, name: str = "podinfo", **spec: Any) -> dict[str, Any]:
    """A Gateway API Canary."""
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "service": {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": ns}]},
        "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
    }
    body.update(spec)
    return {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": name, "namespace": ns},
            "spec": body}


def httproute(ns: str, name: str = "route", rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An HTTPRoute with the fields the controller leaves to the server's defaults."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["app.example.com"],
            "rules": rules if rules is not None else [{"backendRefs": [
                {"name": "primary", "port": 80, "weight": 90}, {"name": "canary", "port": 80, "weight": 10}]}],
        },
    }


def cm_path(ns: str, name: str = "") -> str:
    """The ConfigMaps collection (or one of them)."""
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def secret_path(ns: str, name: str = "") -> str:
    """The Secrets collection (or one of them)."""
    return f"/api/v1/namespaces/{ns}/secrets" + (f"/{name}" if name else "")


def managers(doc: Any) -> Any:
    """Who manages the object's fields, by operation (what server-side apply decides conflicts by)."""
    return sorted((m.get("manager", ""), m.get("operation", ""), m.get("subresource", ""))
                  for m in (doc or {}).get("metadata", {}).get("managedFields") or [])


def rv(obj: dict[str, Any]) -> str:
    """An object's resourceVersion."""
    return str(obj["metadata"]["resourceVersion"])


def names(doc: Any) -> list[str]:
    """The names of a list's items."""
    return sorted(i["metadata"]["name"] for i in (doc or {}).get("items") or [])


async def wait_gone(c: Recorder, path: str, seconds: float = GC_WAIT) -> None:
    """Poll (unrecorded) until ``path`` answers 404, then record that answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        status, _ = await c.call("GET", path, record=False)
        if status == 404:
            break
        await asyncio.sleep(0.2)
    await c.call("GET", path)


# -- discovery --------------------------------------------------------------------------------------------------

CORE_RESOURCES = ("namespaces", "services", "configmaps", "secrets", "events", "pods", "endpoints",
                  "services/status", "pods/status")
GROUPS = ("apps", "autoscaling", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io", "flagger.app",
          "gateway.networking.k8s.io", "discovery.k8s.io")


def _resources(doc: Any, wanted: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    out = []
    for r in (doc or {}).get("resources") or []:
        if wanted is not None and r["name"] not in wanted:
            continue
        out.append({k: (sorted(v) if isinstance(v, list) else v) for k, v in r.items()
                    if k in ("name", "singularName", "namespaced", "kind", "verbs", "shortNames", "categories")})
    return sorted(out, key=lambda r: r["name"])


@case("discovery")
async def discovery_core(c: Recorder, ns: str) -> None:
    """The core group's versions and the core resources the controller and kubectl use."""
    await c.call("GET", "/api", pick=lambda d: {"kind": d.get("kind"), "versions": d.get("versions")})
    await c.call("GET", "/api/v1", pick=lambda d: _resources(d, CORE_RESOURCES))


@case("discovery")
async def discovery_groups(c: Recorder, ns: str) -> None:
    """The API groups the controller and kubectl use, their versions and preferred versions."""
    def pick(doc: Any) -> Any:
        return sorted(({"name": g["name"], "versions": [v["groupVersion"] for v in g["versions"]],
                        "preferred": g["preferredVersion"]["groupVersion"]}
                       for g in doc.get("groups") or [] if g["name"] in GROUPS), key=lambda g: g["name"])
    await c.call("GET", "/apis", pick=pick)
    for path in (FLAGGER, GW, "/apis/apps/v1", "/apis/coordination.k8s.io/v1"):
        wanted = None if path in (FLAGGER, GW) else ("deployments", "daemonsets", "leases", "deployments/status")
        await c.call("GET", path, pick=lambda d, wanted=wanted: _resources(d, wanted))


@case("discovery (aggregated, kubectl's first request)", critical=False)
async def discovery_aggregated(c: Recorder, ns: str) -> None:
    """Aggregated discovery (apidiscovery.k8s.io/v2), which kubectl asks for first and falls back from."""
    def pick(doc: Any) -> Any:
        if (doc or {}).get("kind") != "APIGroupDiscoveryList":
            return {"kind": (doc or {}).get("kind")}
        return sorted(({"name": g["metadata"].get("name", ""),
                        "versions": [{"version": v["version"],
                                      "resources": sorted(r["resource"] for r in v.get("resources") or [])}
                                     for v in g.get("versions") or []]}
                       for g in doc.get("items") or [] if g["metadata"].get("name", "") in ("flagger.app",)),
                      key=lambda g: g["name"])
    await c.call("GET", "/apis", accept=AGGREGATED, pick=pick)


@case("discovery", critical=False)
async def version(c: Recorder, ns: str) -> None:
    """/version: which fields it has (the values name the build)."""
    await c.call("GET", "/version", pick=lambda d: sorted(d))


# -- CRUD, conflicts, pagination --------------------------------------------------------------------------------


@case("create, get, errors")
async def create_get_errors(c: Recorder, ns: str) -> None:
    """Create, read back, create again (409 AlreadyExists), read a missing object (404), bad JSON (400)."""
    await c.call("POST", cm_path(ns), configmap(ns, "a"))
    await c.call("GET", cm_path(ns, "a"))
    await c.call("POST", cm_path(ns), configmap(ns, "a"))
    await c.call("GET", cm_path(ns, "missing"))
    await c.call("GET", f"{FLAGGER}/namespaces/{ns}/canaries/missing")
    await c.call("POST", cm_path(ns), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})


@case("malformed requests", critical=False)
async def malformed(c: Recorder, ns: str) -> None:
    """Bodies that do not decode, a merge patch that is not an object, a continue token that is not one: the
    status codes agree; the messages are Go's decoder errors on one side."""
    await c.call("POST", cm_path(ns), b"{not json", content_type="application/json")
    await c.call("POST", cm_path(ns), configmap(ns, "a"), record=False)
    await c.call("PATCH", cm_path(ns, "a"), b"[1, 2]", content_type=MERGE)
    await c.call("GET", secret_path(ns), query={"limit": 2, "continue": "garbage"})


@case("list pagination (limit/continue)")
async def list_pagination(c: Recorder, ns: str) -> None:
    """The controller lists with limit and follows continue tokens."""
    for i in range(5):
        await c.call("POST", secret_path(ns), secret(ns, f"s-{i}"), record=False)
    _, first = await c.call("GET", secret_path(ns), query={"limit": 2}, pick=lambda d: {
        "names": names(d), "more": bool(d["metadata"].get("continue")),
        "remaining": d["metadata"].get("remainingItemCount")})
    token = first["metadata"].get("continue")
    if token:
        await c.call("GET", secret_path(ns), query={"limit": 2, "continue": token}, pick=lambda d: {
            "names": names(d), "more": bool(d["metadata"].get("continue"))})


@case("409 on a stale update")
async def stale_update(c: Recorder, ns: str) -> None:
    """Replace with the current resourceVersion, then with the old one (409 Conflict), built-in and custom."""
    _, created = await c.call("POST", cm_path(ns), configmap(ns, "a"))
    old = created
    changed = json.loads(json.dumps(created))
    changed["data"] = {"k": "v2"}
    await c.call("PUT", cm_path(ns, "a"), changed)
    stale = json.loads(json.dumps(old))
    stale["data"] = {"k": "v3"}
    await c.call("PUT", cm_path(ns, "a"), stale)
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    _, made = await c.call("POST", path, canary(ns))
    made["status"] = {"phase": "Initializing"}
    await c.call("PUT", f"{path}/podinfo/status", made)
    await c.call("PUT", f"{path}/podinfo/status", made)


@case("update without resourceVersion", critical=False)
async def unconditional_update(c: Recorder, ns: str) -> None:
    """A replace without resourceVersion: allowed for ConfigMaps, refused for custom resources."""
    await c.call("POST", cm_path(ns), configmap(ns, "a"))
    await c.call("PUT", cm_path(ns, "a"), configmap(ns, "a"))
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    await c.call("POST", path, canary(ns))
    await c.call("PUT", f"{path}/podinfo", canary(ns))


# -- patches ----------------------------------------------------------------------------------------------------


@case("merge patch")
async def merge_patch(c: Recorder, ns: str) -> None:
    """Merge patches as the controller sends them: scale a Deployment, null removes a key, a Canary, a route."""
    deps = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await c.call("POST", deps, deployment(ns), record=False)
    await c.call("PATCH", f"{deps}/web", {"spec": {"replicas": 0}}, content_type=MERGE,
                 pick=lambda d: {"replicas": d["spec"]["replicas"], "generation": d["metadata"]["generation"]})
    await c.call("PATCH", f"{deps}/web", {"metadata": {"labels": {"app": None, "x": "1"}}}, content_type=MERGE,
                 pick=lambda d: d["metadata"].get("labels"))
    await c.call("POST", f"{FLAGGER}/namespaces/{ns}/canaries", canary(ns), record=False)
    await c.call("PATCH", f"{FLAGGER}/namespaces/{ns}/canaries/podinfo", {"spec": {"analysis": {"stepWeight": 20}}},
                 content_type=MERGE, pick=lambda d: {"spec": d["spec"], "generation": d["metadata"]["generation"]})
    await c.call("POST", f"{GW}/namespaces/{ns}/httproutes", httproute(ns), record=False)
    await c.call("PATCH", f"{GW}/namespaces/{ns}/httproutes/route",
                 {"spec": {"rules": [{"backendRefs": [{"name": "primary", "port": 80, "weight": 100},
                                                      {"name": "canary", "port": 80, "weight": 0}]}]}},
                 content_type=MERGE, pick=lambda d: d["spec"])


@case("JSON patch")
async def json_patch(c: Recorder, ns: str) -> None:
    """RFC 6902 patches: replace, add, remove, a failing test op, a missing path."""
    await c.call("POST", cm_path(ns), configmap(ns, "a"), record=False)
    await c.call("PATCH", cm_path(ns, "a"), [{"op": "replace", "path": "/data/k", "value": "w"},
                                             {"op": "add", "path": "/data/n", "value": "1"}],
                 content_type=JSON_PATCH, pick=lambda d: d["data"])
    await c.call("PATCH", cm_path(ns, "a"), [{"op": "remove", "path": "/data/n"}], content_type=JSON_PATCH,
                 pick=lambda d: d["data"])
    await c.call("PATCH", cm_path(ns, "a"), [{"op": "test", "path": "/data/k", "value": "nope"}],
                 content_type=JSON_PATCH)
    await c.call("PATCH", cm_path(ns, "a"), [{"op": "remove", "path": "/data/absent"}], content_type=JSON_PATCH)


@case("strategic merge patch")
async def strategic_patch(c: Recorder, ns: str) -> None:
    """Lists merged by their key (containers by name, env by name, ports by containerPort), $patch: delete, and
    custom resources, which have no strategy (415)."""
    deps = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await c.call("POST", deps, deployment(ns, containers=2), record=False)

    def containers(d: Any) -> Any:
        return d["spec"]["template"]["spec"]["containers"]

    await c.call("PATCH", f"{deps}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "c1", "image": "example/c1:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}},
        content_type=STRATEGIC, pick=containers)
    await c.call("PATCH", f"{deps}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "c0", "$patch": "delete"}]}}}}, content_type=STRATEGIC, pick=containers)
    await c.call("PATCH", f"{deps}/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "c1", "ports": [{"containerPort": 9090, "name": "extra"}]}]}}}},
        content_type=STRATEGIC, pick=containers)
    await c.call("POST", f"{FLAGGER}/namespaces/{ns}/canaries", canary(ns), record=False)
    await c.call("PATCH", f"{FLAGGER}/namespaces/{ns}/canaries/podinfo", {"spec": {"analysis": {"stepWeight": 5}}},
                 content_type=STRATEGIC)


@case("server-side apply")
async def apply_patch(c: Recorder, ns: str) -> None:
    """Apply creates, a second manager conflicts (409 naming the field and manager), force takes over."""
    doc = configmap(ns, "applied")
    await c.call("PATCH", cm_path(ns, "applied"), json.dumps(doc), content_type=APPLY,
                 query={"fieldManager": "alice"})
    await c.call("GET", cm_path(ns, "applied"), pick=managers)
    other = json.loads(json.dumps(doc))
    other["data"] = {"k": "bob's"}
    await c.call("PATCH", cm_path(ns, "applied"), json.dumps(other), content_type=APPLY,
                 query={"fieldManager": "bob"})
    await c.call("PATCH", cm_path(ns, "applied"), json.dumps(other), content_type=APPLY,
                 query={"fieldManager": "bob", "force": "true"})
    await c.call("GET", cm_path(ns, "applied"), pick=managers)
    await c.call("PATCH", cm_path(ns, "applied"), json.dumps(other), content_type=APPLY)
    path = f"{FLAGGER}/namespaces/{ns}/canaries/podinfo"
    await c.call("PATCH", path, json.dumps(canary(ns)), content_type=APPLY, query={"fieldManager": "kubectl"})


# -- status, generation, finalizers, GC -------------------------------------------------------------------------


@case("status subresource and generation")
async def status_and_generation(c: Recorder, ns: str) -> None:
    """The main resource ignores status, /status ignores spec; only spec changes bump generation."""
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    _, made = await c.call("POST", path, {**canary(ns), "status": {"phase": "Succeeded"}})
    made["status"] = {"phase": "Progressing", "canaryWeight": 10}
    made["spec"]["analysis"]["stepWeight"] = 25
    _, written = await c.call("PUT", f"{path}/podinfo/status", made)
    written["spec"]["analysis"]["stepWeight"] = 30
    written["status"] = {"phase": "Failed"}
    _, written = await c.call("PUT", f"{path}/podinfo", written)
    written["metadata"]["labels"] = {"team": "a"}
    await c.call("PUT", f"{path}/podinfo", written)
    await c.call("PATCH", f"{path}/podinfo/status", {"status": {"canaryWeight": 20}}, content_type=MERGE)
    await c.call("GET", f"{path}/podinfo/status")
    deps = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await c.call("POST", deps, deployment(ns), pick=lambda d: d["metadata"].get("generation"))
    await c.call("PATCH", f"{deps}/web", {"metadata": {"labels": {"x": "1"}}}, content_type=MERGE,
                 pick=lambda d: d["metadata"].get("generation"))
    await c.call("PATCH", f"{deps}/web", {"spec": {"replicas": 3}}, content_type=MERGE,
                 pick=lambda d: d["metadata"].get("generation"))


@case("finalizers and deletionTimestamp")
async def finalizers(c: Recorder, ns: str) -> None:
    """Delete marks an object with a finalizer; no new finalizer while deleting; removing the last one deletes."""
    await c.call("POST", cm_path(ns), configmap(ns, "held", finalizers=["example.com/hold"]))
    await c.call("DELETE", cm_path(ns, "held"))
    await c.call("GET", cm_path(ns, "held"))
    await c.call("PATCH", cm_path(ns, "held"), {"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}},
                 content_type=MERGE)
    await c.call("PATCH", cm_path(ns, "held"), {"metadata": {"finalizers": None}}, content_type=MERGE)
    await wait_gone(c, cm_path(ns, "held"))
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    await c.call("POST", path, {**canary(ns), "metadata": {"name": "podinfo", "namespace": ns,
                                                         "finalizers": ["finalizer.flagger.app"]}})
    await c.call("DELETE", f"{path}/podinfo")
    await c.call("PATCH", f"{path}/podinfo", {"metadata": {"finalizers": []}}, content_type=MERGE)
    await wait_gone(c, f"{path}/podinfo")


@case("ownerReference garbage collection")
async def owner_gc(c: Recorder, ns: str) -> None:
    """Dependents go with their owner (background); foreground deletion holds the owner until they are gone."""
    _, owner = await c.call("POST", cm_path(ns), configmap(ns, "owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
           "controller": True, "blockOwnerDeletion": True}
    await c.call("POST", cm_path(ns), configmap(ns, "dependent", ownerReferences=[ref]))
    await c.call("DELETE", cm_path(ns, "owner"))
    await wait_gone(c, cm_path(ns, "dependent"))
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    _, made = await c.call("POST", path, canary(ns))
    cref = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
            "uid": made["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    await c.call("POST", cm_path(ns), configmap(ns, "owned", ownerReferences=[cref]))
    await c.call("DELETE", f"{path}/podinfo", {"kind": "DeleteOptions", "apiVersion": "v1",
                                               "propagationPolicy": "Foreground"},
                 pick=lambda d: {"finalizers": d["metadata"].get("finalizers"),
                                 "deleting": bool(d["metadata"].get("deletionTimestamp"))})
    await wait_gone(c, cm_path(ns, "owned"))
    await wait_gone(c, f"{path}/podinfo")


# -- selectors --------------------------------------------------------------------------------------------------


@case("label and field selectors")
async def selectors(c: Recorder, ns: str) -> None:
    """Equality and set-based label selectors, field selectors on built-in and custom kinds, and bad selectors."""
    for name, labels in (("a", {"app": "a", "tier": "web"}), ("b", {"app": "b"}), ("c", {"app": "c", "tier": "db"})):
        await c.call("POST", secret_path(ns), secret(ns, name, labels), record=False)
    for selector in ("app=a", "app in (a,b)", "!tier", "app!=a", "tier", "app notin (a),tier"):
        await c.call("GET", secret_path(ns), query={"labelSelector": selector}, pick=names)
    await c.call("GET", secret_path(ns), query={"labelSelector": "app==>"})
    await c.call("GET", secret_path(ns), query={"fieldSelector": "metadata.name=b"}, pick=names)
    await c.call("GET", secret_path(ns), query={"fieldSelector": "metadata.name!=b"}, pick=names)
    await c.call("GET", secret_path(ns), query={"fieldSelector": "type=Opaque"})
    await c.call("POST", f"{FLAGGER}/namespaces/{ns}/canaries", canary(ns), record=False)
    await c.call("GET", f"{FLAGGER}/namespaces/{ns}/canaries", query={"fieldSelector": "metadata.name=podinfo"},
                 pick=names)
    await c.call("GET", f"{FLAGGER}/namespaces/{ns}/canaries", query={"fieldSelector": "spec.provider=x"})


# -- CRD schemas ------------------------------------------------------------------------------------------------


@case("CRD schema: type, range and required errors (422)")
async def schema_errors(c: Recorder, ns: str) -> None:
    """Bad Canaries refused by the schema: the status, reason, message and the causes' field paths."""
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    bad = canary(ns)
    bad["spec"]["service"]["port"] = "http"
    bad["spec"]["analysis"]["stepWeight"] = 0
    await c.call("POST", path, bad)
    missing = canary(ns)
    del missing["spec"]["targetRef"]
    await c.call("POST", path, missing)
    huge = canary(ns)
    huge["spec"]["service"]["port"] = 70000
    await c.call("POST", path, huge)
    wrong = canary(ns)
    wrong["spec"]["analysis"] = "often"
    await c.call("POST", path, wrong)


@case("CRD schema: defaulting")
async def defaulting(c: Recorder, ns: str) -> None:
    """The HTTPRoute defaults the controller compares against (parentRef group/kind, path match, weight)."""
    route = httproute(ns, rules=[{"backendRefs": [{"name": "primary", "port": 80}]}])
    await c.call("POST", f"{GW}/namespaces/{ns}/httproutes", route, pick=lambda d: d["spec"])


@case("CRD schema: pruning and strict field validation")
async def pruning(c: Recorder, ns: str) -> None:
    """Unknown fields are pruned; kubectl's fieldValidation=Strict refuses them naming the field."""
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    doc = canary(ns)
    doc["spec"]["analysis"]["stepWieght"] = 5
    doc["spec"]["surprise"] = {"a": 1}
    await c.call("POST", path, doc, query={"fieldValidation": "Strict"})
    await c.call("POST", path, doc, pick=lambda d: d["spec"])
    doc["metadata"]["name"] = "other"
    await c.call("POST", path, doc, query={"fieldValidation": "Ignore"}, pick=lambda d: sorted(d["spec"]))
    cm = configmap(ns, "strict")
    cm["bogus"] = 1
    await c.call("POST", cm_path(ns), cm, query={"fieldValidation": "Strict"})


@case("CRD schema: CEL rules (x-kubernetes-validations)")
async def cel_rules(c: Recorder, ns: str) -> None:
    """HTTPRoutes that break the Gateway API's CEL rules: each refusal names the field and carries its message."""
    routes = f"{GW}/namespaces/{ns}/httproutes"
    mismatched = httproute(ns, "filter-type", rules=[{
        "filters": [{"type": "RequestMirror",
                     "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}],
        "backendRefs": [{"name": "primary", "port": 80}]}])
    await c.call("POST", routes, mismatched)
    rewrite = httproute(ns, "rewrite", rules=[{
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath"}}}],
        "backendRefs": [{"name": "primary", "port": 80}]}])
    await c.call("POST", routes, rewrite)
    relative = httproute(ns, "relative", rules=[{
        "matches": [{"path": {"type": "PathPrefix", "value": "api"}}],
        "backendRefs": [{"name": "primary", "port": 80}]}])
    await c.call("POST", routes, relative)
    no_port = httproute(ns, "no-port", rules=[{"backendRefs": [{"name": "primary"}]}])
    await c.call("POST", routes, no_port)


# -- tables -----------------------------------------------------------------------------------------------------


@case("printer columns and Table output")
async def tables(c: Recorder, ns: str) -> None:
    """kubectl get: the Canary's printer columns and cells, a built-in's columns, a single object's Table."""
    path = f"{FLAGGER}/namespaces/{ns}/canaries"
    _, made = await c.call("POST", path, canary(ns), record=False)
    made["status"] = {"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1,
                      "lastTransitionTime": "2026-01-01T00:00:00Z"}
    await c.call("PUT", f"{path}/podinfo/status", made, record=False)

    def table(doc: Any) -> Any:
        return {"kind": doc.get("kind"), "apiVersion": doc.get("apiVersion"),
                "columns": [{k: col.get(k) for k in ("name", "type", "format", "priority")}
                            for col in doc.get("columnDefinitions") or []],
                "rows": [row.get("cells") for row in doc.get("rows") or [] if row.get("cells", [""])[0] != ROOT_CA],
                "objects": [sorted(k for k in (row.get("object") or {}).get("metadata") or {} if k != "managedFields")
                            for row in doc.get("rows") or [] if row.get("cells", [""])[0] != ROOT_CA]}

    await c.call("GET", path, accept=TABLE, pick=table)
    await c.call("GET", f"{path}/podinfo", accept=TABLE, pick=table)
    await c.call("GET", path, accept=TABLE, query={"includeObject": "Object"}, pick=lambda d: [
        sorted(row.get("object") or {}) for row in d.get("rows") or []])
    await c.call("POST", cm_path(ns), configmap(ns, "a"), record=False)
    await c.call("GET", cm_path(ns), accept=TABLE, pick=table)


# -- watches ----------------------------------------------------------------------------------------------------


@case("watch from a resourceVersion")
async def watch_from_version(c: Recorder, ns: str) -> None:
    """A watch from a known version replays the later changes, in order, then times out."""
    _, made = await c.call("POST", secret_path(ns), secret(ns, "a"))
    await c.call("PATCH", secret_path(ns, "a"), {"data": {"k": "Mg=="}}, content_type=MERGE)
    await c.call("DELETE", secret_path(ns, "a"))
    await c.watch(secret_path(ns), {"watch": "1", "resourceVersion": rv(made), "timeoutSeconds": "1"}, seconds=5)


@case("410 Gone from an old resourceVersion")
async def watch_too_old(c: Recorder, ns: str) -> None:
    """A watch from a version the server no longer keeps: 410 Expired (as an HTTP status or an ERROR event)."""
    await c.call("POST", secret_path(ns), secret(ns, "a"), record=False)
    await c.watch(f"{FLAGGER}/namespaces/{ns}/canaries",
                  {"watch": "1", "resourceVersion": "1", "timeoutSeconds": "1"}, seconds=5, until=1)
    await c.watch(secret_path(ns), {"watch": "1", "resourceVersion": "1", "timeoutSeconds": "1"}, seconds=5, until=1)


@case("bookmarks")
async def bookmarks(c: Recorder, ns: str) -> None:
    """A streaming list (sendInitialEvents, as client-go's informers send): the objects, then a BOOKMARK marked
    k8s.io/initial-events-end; a plain watch asking for bookmarks."""
    await c.call("POST", secret_path(ns), secret(ns, "a"), record=False)
    await c.watch(secret_path(ns), {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
                                "allowWatchBookmarks": "true", "timeoutSeconds": "1"}, seconds=5, until=2)
    await c.watch(secret_path(ns), {"watch": "1", "sendInitialEvents": "true", "timeoutSeconds": "1"}, seconds=5)


# -- the controller's own shapes --------------------------------------------------------------------------------


@case("Events as the controller writes them")
async def events(c: Recorder, ns: str) -> None:
    """core/v1 Event create, then the count bump (a merge patch)."""
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "podinfo.1", "namespace": ns},
        "involvedObject": {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                           "namespace": ns, "uid": "0b5c9e0e-0000-4000-8000-000000000001"},
        "reason": "Synced", "message": "Initialization done! podinfo.test", "type": "Normal",
        "source": {"component": "flaggerpy"}, "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "reportingComponent": "flaggerpy", "reportingInstance": "flaggerpy-0",
    }
    await c.call("POST", f"/api/v1/namespaces/{ns}/events", event)
    await c.call("PATCH", f"/api/v1/namespaces/{ns}/events/podinfo.1",
                 {"count": 2, "lastTimestamp": "2026-01-01T00:01:00Z"}, content_type=MERGE)
    await c.call("GET", f"/api/v1/namespaces/{ns}/events",
                 query={"fieldSelector": "involvedObject.kind=Canary,involvedObject.name=podinfo"}, pick=names)


@case("Leases as leader election uses them")
async def leases(c: Recorder, ns: str) -> None:
    """Create, take over with a replace, a stale renewal (409), a watch by name (fieldSelector)."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "flaggerpy", "namespace": ns},
             "spec": {"holderIdentity": "a_1", "leaseDurationSeconds": 15,
                      "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z",
                      "leaseTransitions": 0}}
    _, made = await c.call("POST", path, lease)
    taken = json.loads(json.dumps(made))
    taken["spec"]["holderIdentity"] = "b_2"
    taken["spec"]["leaseTransitions"] = 1
    await c.call("PUT", f"{path}/flaggerpy", taken)
    await c.call("PUT", f"{path}/flaggerpy", made)
    await c.watch(path, {"watch": "1", "fieldSelector": "metadata.name=flaggerpy", "resourceVersion": rv(made),
                         "timeoutSeconds": "1"}, seconds=5)


@case("delete answers", critical=False)
async def delete_answers(c: Recorder, ns: str) -> None:
    """What DELETE returns: a Status for most built-in kinds, the object for custom resources; 404 when absent."""
    await c.call("POST", cm_path(ns), configmap(ns, "a"), record=False)
    await c.call("DELETE", cm_path(ns, "a"), {"kind": "DeleteOptions", "apiVersion": "v1",
                                              "propagationPolicy": "Background"})
    await c.call("DELETE", cm_path(ns, "a"))
    await c.call("POST", f"{FLAGGER}/namespaces/{ns}/canaries", canary(ns), record=False)
    await c.call("DELETE", f"{FLAGGER}/namespaces/{ns}/canaries/podinfo")
