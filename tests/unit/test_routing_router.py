"""The router against an in-memory API that defaults like kube-apiserver (CRD ``default`` keywords), checks
resourceVersions and counts writes: create once, write only what changes, never take over a foreign route."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
import yaml

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary
from flaggerpy.kube.api import Resource
from flaggerpy.kube.errors import AlreadyExists, Conflict, Forbidden, NotFound
from flaggerpy.kube.resources import HTTPROUTES_V1
from flaggerpy.routing import (
    GatewayAPIRouter,
    InvalidWeights,
    RouteNotOwned,
    Routers,
    UnsupportedProvider,
    intended_weights,
    new_router,
    route_drifted,
)
from flaggerpy.routing.build import ALL_PRIMARY, STANDARD_V1_6, RouteFeatures, RouteWeights, desired_spec
from flaggerpy.routing.normalize import specs_equal
from tests.paths import GATEWAY_API_CRDS, REPO_ROOT
from tests.routes import Remembering, weights_of

CRDS = GATEWAY_API_CRDS
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "flagger"
pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
UID = "6a1c0b8e-2222-4d4d-8b8b-abcdefabcdef"


@cache
def _parsed_crd(plural: str) -> dict[str, Any]:
    return yaml.load((CRDS / f"gateway.networking.k8s.io_{plural}.yaml").read_text(), Loader=_LOADER)  # type: ignore[no-any-return]


def _crd(plural: str) -> dict[str, Any]:
    return copy.deepcopy(_parsed_crd(plural))


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill ``default`` values from an OpenAPI schema, as kube-apiserver does for custom resources."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, item in patch.items():
        if item is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), item)
    return out


class FakeKube:
    """Just enough of KubeClient for the router: get/create/patch with defaulting, generations and conflicts."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.gets = 0
        self.rv = 100
        self.crd_error: Exception | None = None
        self.schemas = {
            plural: {v["name"]: v["schema"]["openAPIV3Schema"] for v in _parsed_crd(plural)["spec"]["versions"]}
            for plural in ("httproutes", "grpcroutes")
        }

    def _key(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
        return resource.plural, namespace or "", name

    def _stamp(self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        obj["spec"] = apply_defaults(
            obj.get("spec") or {}, self.schemas[resource.plural][resource.version]["properties"]["spec"]
        )
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        meta["generation"] = generation + 1 if old is None or old.get("spec") != obj["spec"] else generation
        return obj

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.gets += 1
        if resource.plural == "customresourcedefinitions":
            if self.crd_error:
                raise self.crd_error
            return _crd(name.split(".")[0])
        key = self._key(resource, namespace, name)
        if key not in self.objects:
            raise NotFound(404, "NotFound", f"{resource.plural} {name} not found")
        return copy.deepcopy(self.objects[key])

    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = self._key(resource, meta["namespace"], meta["name"])
        if key in self.objects:
            raise AlreadyExists(409, "AlreadyExists", "exists")
        self.writes.append(("create", meta["name"]))
        self.objects[key] = self._stamp(resource, copy.deepcopy(obj), None)
        return copy.deepcopy(self.objects[key])

    async def patch(
        self, resource: Resource, name: str, namespace: str | None, body: Any, patch_type: str = "merge"
    ) -> dict[str, Any]:
        assert patch_type == "merge"
        key = self._key(resource, namespace, name)
        old = self.objects[key]
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != old["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        self.writes.append(("patch", name))
        self.objects[key] = self._stamp(resource, merge(old, body), old)
        return copy.deepcopy(self.objects[key])

    def route(self, name: str = "podinfo", plural: str = "httproutes", namespace: str = "test") -> dict[str, Any]:
        return self.objects[(plural, namespace, name)]


def canary(name: str = "podinfo-gatewayapi.yaml", **status: Any) -> Canary:
    doc = next(d for d in yaml.safe_load_all((FIXTURES / name).read_text()) if d and d.get("kind") == "Canary")
    doc["metadata"].update(uid=UID, namespace="test")
    doc["status"] = {**(doc.get("status") or {}), **status}
    return Canary.from_dict(doc)


def weights(route: dict[str, Any]) -> list[int]:
    return [b["weight"] for b in route["spec"]["rules"][-1]["backendRefs"]]


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def router(kube: FakeKube) -> Remembering:
    return Remembering(GatewayAPIRouter(kube))  # type: ignore[arg-type]


RouteCache = dict[tuple[str, str], dict[str, Any]]


@pytest.fixture
def cache() -> RouteCache:
    """An informer's stand-in: the routes by (namespace, name), as the test puts them there."""
    return {}


def cached_router(kube: FakeKube, cache: RouteCache) -> Remembering:
    """A router that reads HTTPRoutes from ``cache`` and is told the CRD's features (so it never reads the CRD)."""
    return Remembering(GatewayAPIRouter(kube, get_live=lambda ns, name: cache.get((ns, name)),  # type: ignore[arg-type]
                                        features=STANDARD_V1_6))


async def test_reconcile_creates_the_route_all_primary_then_writes_nothing(
    kube: FakeKube, router: Remembering
) -> None:
    await router.reconcile(canary(), ALL_PRIMARY)
    assert kube.writes == [("create", "podinfo")]
    assert weights(kube.route()) == [100, 0]
    await router.reconcile(canary(), ALL_PRIMARY)
    await router.reconcile(canary(), ALL_PRIMARY)
    assert kube.writes == [("create", "podinfo")], "a defaulted live route must compare equal"


async def test_reconcile_writes_only_when_weights_change(kube: FakeKube, router: Remembering) -> None:
    c = canary()
    await router.reconcile(c, intended_weights(c))
    await router.reconcile(c, RouteWeights(90, 10))
    await router.reconcile(c, RouteWeights(90, 10))
    assert [w for w, _ in kube.writes] == ["create", "patch"]
    assert weights_of(kube.route(), c) == (90, 10, False)
    await router.reconcile(c, RouteWeights(100, 0, True))
    assert weights_of(kube.route(), c) == (100, 0, True)


async def test_invalid_weights_are_refused_before_any_io(kube: FakeKube, router: Remembering) -> None:
    with pytest.raises(InvalidWeights):
        await router.reconcile(canary(), RouteWeights(60, 60))
    assert kube.writes == [] and kube.gets == 0


async def test_foreign_route_is_never_overwritten(kube: FakeKube, router: Remembering) -> None:
    foreign = {"metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "1"}, "spec": {"rules": [{}]}}
    kube.objects[("httproutes", "test", "podinfo")] = copy.deepcopy(foreign)
    with pytest.raises(RouteNotOwned) as err:
        await router.reconcile(canary(), ALL_PRIMARY)
    assert err.value.route == "HTTPRoute test/podinfo" and err.value.owner is None
    foreign["metadata"]["ownerReferences"] = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "x", "controller": True}
    ]
    kube.objects[("httproutes", "test", "podinfo")] = foreign
    with pytest.raises(RouteNotOwned, match="controlled by Rollout test/web"):
        await router.reconcile(canary(), RouteWeights(50, 50))
    assert kube.writes == []


async def test_foreign_metadata_and_unmanaged_spec_fields_are_kept(kube: FakeKube, router: Remembering) -> None:
    c = canary()
    await router.reconcile(c, intended_weights(c))
    live = kube.route()
    live["metadata"]["labels"] = {"team": "web"}
    live["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = "app:x"
    live["spec"]["useDefaultGateways"] = "All"
    await router.reconcile(c, RouteWeights(80, 20))
    live = kube.route()
    assert live["metadata"]["labels"] == {"team": "web"}
    assert live["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] == "app:x"
    assert live["spec"]["useDefaultGateways"] == "All"
    assert weights(live) == [80, 20]


async def test_drift_is_repaired_to_the_persisted_weights(kube: FakeKube, router: Remembering) -> None:
    progressing = canary(phase="Progressing", canaryWeight=30)
    await router.reconcile(canary(), ALL_PRIMARY)
    await router.reconcile(progressing, RouteWeights(70, 30))
    kube.route()["spec"]["rules"][0]["backendRefs"][1]["weight"] = 90
    assert route_drifted(progressing, kube.route())
    await router.reconcile(progressing, intended_weights(progressing))
    assert weights(kube.route()) == [70, 30]
    assert not route_drifted(progressing, kube.route())


async def test_own_write_stands_in_for_a_cache_that_has_not_seen_it(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    c = canary()
    await router.reconcile(c, intended_weights(c))
    cache[("test", "podinfo")] = copy.deepcopy(kube.route())
    await router.reconcile(c, RouteWeights(90, 10))
    # The cache still holds the old version, but the router knows what its own write left: no read, no write.
    gets = kube.gets
    await router.reconcile(c, RouteWeights(90, 10))
    assert kube.gets == gets
    assert [w for w, _ in kube.writes] == ["create", "patch"]
    await router.reconcile(c, RouteWeights(50, 50))
    assert weights(kube.route()) == [50, 50]


async def test_stale_cache_conflict_is_reread_and_retried(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    c = canary()
    await router.reconcile(c, intended_weights(c))
    await router.reconcile(c, RouteWeights(90, 10))
    cache[("test", "podinfo")] = copy.deepcopy(kube.route())
    # Someone else edits the route and the cache has not seen it: the patch conflicts, the router reads the
    # server once and writes again on the latest version.
    await kube.patch(HTTPROUTES_V1, "podinfo", "test", {"metadata": {"labels": {"team": "web"}}})
    gets = kube.gets
    await router.reconcile(c, RouteWeights(70, 30))
    assert kube.gets == gets + 1
    assert weights(kube.route()) == [70, 30]
    assert kube.route()["metadata"]["labels"]["team"] == "web"


async def test_forced_reconcile_writes_whatever_the_cache_shows(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    c = canary()
    await router.reconcile(c, intended_weights(c))
    await router.reconcile(c, RouteWeights(70, 30))
    # A cache that missed a write (say, a dead replica's) shows the route already all primary.
    stale = copy.deepcopy(kube.route())
    for backend in stale["spec"]["rules"][-1]["backendRefs"]:
        backend["weight"] = 100 if backend["name"].endswith("-primary") else 0
    cache[("test", "podinfo")] = stale
    router = cached_router(kube, cache)  # a fresh router: no write of its own stands in for the cache
    gets = kube.gets
    await router.reconcile(c, intended_weights(c), force=True)
    # The write carried the cache's resourceVersion, which is current here: written without a read.
    assert weights(kube.route()) == [100, 0]
    assert kube.gets == gets


async def test_forced_reconcile_on_a_stale_cache_rereads_once(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    c = canary()
    await router.reconcile(c, intended_weights(c))
    cache[("test", "podinfo")] = copy.deepcopy(kube.route())
    other = Remembering(GatewayAPIRouter(kube))  # type: ignore[arg-type]
    await other.reconcile(c, RouteWeights(70, 30))  # a write this router's cache never sees
    gets = kube.gets
    await router.reconcile(c, intended_weights(c), force=True)
    assert kube.gets == gets + 1
    assert weights(kube.route()) == [100, 0]


async def test_reads_come_from_the_cache_when_it_has_the_route(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    await router.reconcile(canary(), ALL_PRIMARY)
    cache[("test", "podinfo")] = copy.deepcopy(kube.route())
    gets = kube.gets
    assert weights_of(kube.route(), canary()) == (100, 0, False)
    await router.reconcile(canary(), ALL_PRIMARY)
    assert kube.gets == gets


async def test_is_accepted_reports_the_waiting_gateway(kube: FakeKube, router: Remembering) -> None:
    c = canary()
    ok, reason = await router.is_accepted(c)
    assert not ok and reason == "HTTPRoute test/podinfo does not exist yet"
    await router.reconcile(c, intended_weights(c))
    ok, reason = await router.is_accepted(c)
    assert not ok and reason.startswith("waiting for Gateway") and "HTTPRoute test/podinfo" in reason
    live = kube.route()
    live["status"] = {
        "parents": [
            {
                "parentRef": ref,
                "controllerName": "x/y",
                "conditions": [
                    {"type": "Accepted", "status": "True", "observedGeneration": live["metadata"]["generation"]}
                ],
            }
            for ref in live["spec"]["parentRefs"]
        ]
    }
    assert await router.is_accepted(c) == (True, "")


async def test_finalize_sends_everything_to_the_apex_and_releases_the_route(
    kube: FakeKube, router: Remembering
) -> None:
    c = canary()
    await router.reconcile(c, intended_weights(c))
    await router.reconcile(c, RouteWeights(50, 50))
    await router.finalize(c)
    live = kube.route()
    assert [(b["name"], b["weight"]) for r in live["spec"]["rules"] for b in r["backendRefs"]] == [("podinfo", 100)]
    assert "ownerReferences" not in live["metadata"]


async def test_a_released_route_is_adopted_by_the_next_canary_of_that_name(
    kube: FakeKube, router: Remembering
) -> None:
    await router.reconcile(canary(), ALL_PRIMARY)
    await router.finalize(canary())
    doc = canary().to_dict()
    doc["metadata"]["uid"] = "new-uid"
    await router.reconcile(doc, intended_weights(doc))
    live = kube.route()
    assert [r["uid"] for r in live["metadata"]["ownerReferences"]] == ["new-uid"]
    assert "flaggerpy.io/released-by-canary" not in live["metadata"]["annotations"]
    assert weights(live) == [100, 0]
    other = canary().to_dict()
    other["metadata"].update(name="other", uid="x")
    other["spec"]["service"]["name"] = "podinfo"
    with pytest.raises(RouteNotOwned):
        await router.reconcile(other, intended_weights(other))


async def test_the_takeover_annotation_hands_a_foreign_route_to_the_canary_it_names(
    kube: FakeKube, router: Remembering
) -> None:
    foreign = {"metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "1",
                            "annotations": {"flaggerpy.io/takeover-by-canary": "someone-else"},
                            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                                 "name": "web", "uid": "x", "controller": True}]},
               "spec": {"rules": [{}]}}
    kube.objects[("httproutes", "test", "podinfo")] = copy.deepcopy(foreign)
    with pytest.raises(RouteNotOwned, match="takeover-by-canary"):
        await router.reconcile(canary(), ALL_PRIMARY)
    foreign["metadata"]["annotations"]["flaggerpy.io/takeover-by-canary"] = "podinfo"
    kube.objects[("httproutes", "test", "podinfo")] = foreign
    c = canary().to_dict()
    c["metadata"]["uid"] = "canary-uid"
    await router.reconcile(c, intended_weights(c))
    live = kube.route()
    assert [(r["kind"], r.get("controller")) for r in live["metadata"]["ownerReferences"]] == [("Canary", True)]
    assert weights(live) == [100, 0]


async def test_grpc_canary_uses_grpcroute(kube: FakeKube, router: Remembering) -> None:
    doc = canary().to_dict()
    doc["spec"]["service"]["appProtocol"] = "grpc"
    c = Canary.from_dict(doc)
    await router.reconcile(c, intended_weights(c))
    await router.reconcile(c, RouteWeights(60, 40))
    await router.reconcile(c, RouteWeights(60, 40))
    assert [w for w, _ in kube.writes] == ["create", "patch"]
    assert weights(kube.route(plural="grpcroutes")) == [60, 40]


async def test_invalid_canary_fails_before_any_write(kube: FakeKube, router: Remembering) -> None:
    doc = canary().to_dict()
    doc["spec"]["service"]["match"] = [{"uri": {"exact": "relative"}}]
    with pytest.raises(SpecError, match=r"spec\.service\.match\[0\]\.uri\.exact"):
        await router.reconcile(doc, intended_weights(doc))
    assert kube.writes == []


async def test_features_are_read_from_the_crd_once(kube: FakeKube, router: Remembering) -> None:
    await router.reconcile(canary(), ALL_PRIMARY)
    await router.reconcile(canary(), ALL_PRIMARY)
    crd_reads = kube.gets
    assert await router._features("HTTPRoute") == RouteFeatures(cors=True, retry=False)
    assert kube.gets == crd_reads


async def test_unreadable_crd_means_core_features_only(kube: FakeKube, router: Remembering) -> None:
    kube.crd_error = Forbidden(403, "Forbidden", "no RBAC")
    assert await router._features("HTTPRoute") == RouteFeatures(cors=False, retry=False)


def test_server_defaults_compare_equal() -> None:
    spec = desired_spec(canary("podinfo-ab.yaml"), RouteWeights(0, 100))
    schema = _crd("httproutes")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaulted = apply_defaults(copy.deepcopy(spec), schema)
    assert defaulted != spec
    assert specs_equal(spec, defaulted)
    defaulted["rules"][0]["backendRefs"][0]["weight"] = 1
    assert not specs_equal(spec, defaulted)


def test_factory_by_provider() -> None:
    kube: Any = FakeKube()
    assert new_router("gatewayapi", kube).api_version == "v1"  # type: ignore[attr-defined]
    assert new_router(None, kube).api_version == "v1"  # type: ignore[attr-defined]
    assert new_router("gatewayapi:v1beta1", kube).api_version == "v1beta1"  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedProvider, match=r'spec\.provider: "istio" is not a Gateway API provider'):
        new_router("istio", kube)
    routers = Routers(kube)
    assert routers.for_provider("gatewayapi:v1") is routers.for_provider("gatewayapi")


async def test_grpc_routes_are_read_from_their_own_cache(kube: FakeKube, cache: RouteCache) -> None:
    router = Remembering(GatewayAPIRouter(kube, get_live_grpc=lambda ns, name: cache.get((ns, name))))
    doc = canary().to_dict()
    doc["spec"]["service"]["appProtocol"] = "grpc"
    await router.reconcile(doc, intended_weights(doc))
    cache[("test", "podinfo")] = copy.deepcopy(kube.route(plural="grpcroutes"))
    gets = kube.gets
    assert not await router.reconcile(doc, intended_weights(doc))
    assert kube.gets == gets
    assert weights_of(kube.route(plural="grpcroutes"), doc) == (100, 0, False)


async def test_a_stale_cache_never_makes_a_released_route_look_foreign(kube: FakeKube, cache: RouteCache) -> None:
    router = cached_router(kube, cache)
    c = canary()
    await router.reconcile(c, intended_weights(c))
    cache[("test", "podinfo")] = copy.deepcopy(kube.route())  # the cache never sees the release below
    await router.finalize(c)
    again = canary()
    again.metadata.uid = "7e2d4b6a-4444-4f4f-8d8d-0123456789ab"
    await router.reconcile(again, intended_weights(again))
    assert [r["uid"] for r in kube.route()["metadata"]["ownerReferences"]] == [again.metadata.uid]
    # A foreign route in the cache is checked against the server once before it is called foreign.
    other = cached_router(kube, cache)
    gets = kube.gets
    await other.reconcile(again, intended_weights(again))
    assert kube.gets == gets + 1
