"""CRUD, conflicts, generation, the status subresource, finalizers, GC and selectors over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox

DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, workloads=False) as sandbox:
        yield sandbox


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sb.url) as session:
        yield session


def deployment(name: str = "web", image: str = "nginx:1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **meta},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["json"] = body
        kwargs["headers"] = {"Content-Type": content_type}
    async with http.request(method, path, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_discovery_lists_builtin_groups_and_subresources(http: aiohttp.ClientSession) -> None:
    status, groups = await call(http, "GET", "/apis")
    assert status == 200
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "apiextensions.k8s.io", "coordination.k8s.io", "autoscaling", "events.k8s.io"} <= names
    _, apps = await call(http, "GET", "/apis/apps/v1")
    resources = {r["name"]: r for r in apps["resources"]}
    assert resources["deployments"]["kind"] == "Deployment"
    assert "deploy" in resources["deployments"]["shortNames"]
    assert "deployments/status" in resources and "deployments/scale" in resources
    _, core = await call(http, "GET", "/api/v1")
    assert any(r["name"] == "namespaces" and not r["namespaced"] for r in core["resources"])
    status, version = await call(http, "GET", "/version")
    assert status == 200 and version["major"] == "1"


async def test_create_get_update_and_generation(http: aiohttp.ClientSession) -> None:
    status, created = await call(http, "POST", DEPLOY, deployment())
    assert status == 201
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"]
    status, got = await call(http, "GET", f"{DEPLOY}/web")
    assert status == 200 and got["metadata"]["resourceVersion"] == meta["resourceVersion"]

    got["metadata"].setdefault("labels", {})["team"] = "a"
    _, relabelled = await call(http, "PUT", f"{DEPLOY}/web", got)
    assert relabelled["metadata"]["generation"] == 1, "metadata changes do not bump generation"
    assert int(relabelled["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    relabelled["spec"]["replicas"] = 3
    _, scaled = await call(http, "PUT", f"{DEPLOY}/web", relabelled)
    assert scaled["metadata"]["generation"] == 2


async def test_stale_update_conflicts_and_duplicate_create(http: aiohttp.ClientSession) -> None:
    _, created = await call(http, "POST", DEPLOY, deployment())
    fresh = dict(created, spec=dict(created["spec"], replicas=2))
    assert (await call(http, "PUT", f"{DEPLOY}/web", fresh))[0] == 200
    status, body = await call(http, "PUT", f"{DEPLOY}/web", created)
    assert status == 409
    assert body["kind"] == "Status" and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    status, body = await call(http, "POST", DEPLOY, deployment())
    assert status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'deployments.apps "web" already exists'
    copied = deployment("copy", resourceVersion=created["metadata"]["resourceVersion"])
    status, body = await call(http, "POST", DEPLOY, copied)
    assert status == 500 and "resourceVersion should not be set on objects to be created" in body["message"]


async def test_missing_object_and_namespace(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "GET", f"{DEPLOY}/nope")
    assert status == 404
    assert body["reason"] == "NotFound" and body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    status, body = await call(http, "POST", "/apis/apps/v1/namespaces/ghost/deployments", deployment())
    assert status == 404 and body["message"] == 'namespaces "ghost" not found'


async def test_status_subresource_separates_spec_and_status(http: aiohttp.ClientSession) -> None:
    _, created = await call(http, "POST", DEPLOY, dict(deployment(), status={"replicas": 9}))
    assert "status" not in created, "status is ignored on create"
    status, patched = await call(
        http,
        "PATCH",
        f"{DEPLOY}/web/status",
        {"status": {"readyReplicas": 1}, "spec": {"replicas": 7}},
        "application/merge-patch+json",
    )
    assert status == 200
    assert patched["status"] == {"readyReplicas": 1}
    assert patched["spec"]["replicas"] == 1 and patched["metadata"]["generation"] == 1
    main = dict(patched, status={"readyReplicas": 5})
    _, updated = await call(http, "PUT", f"{DEPLOY}/web", main)
    assert updated["status"] == {"readyReplicas": 1}, "main-resource writes ignore status"


async def test_patch_types(http: aiohttp.ClientSession) -> None:
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    await call(http, "POST", DEPLOY, body)
    strategic = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "app", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}]}
            }
        }
    }
    _, patched = await call(http, "PATCH", f"{DEPLOY}/web", strategic, "application/strategic-merge-patch+json")
    container = patched["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:2"
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    _, patched = await call(
        http,
        "PATCH",
        f"{DEPLOY}/web",
        [{"op": "replace", "path": "/spec/replicas", "value": 4}],
        "application/json-patch+json",
    )
    assert patched["spec"]["replicas"] == 4
    _, patched = await call(
        http, "PATCH", f"{DEPLOY}/web", {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json"
    )
    assert patched["metadata"]["labels"] == {"x": "y"}
    status, err = await call(
        http,
        "PATCH",
        f"{DEPLOY}/web",
        [{"op": "test", "path": "/spec/replicas", "value": 1}],
        "application/json-patch+json",
    )
    assert status == 422 and "test operation failed" in err["message"]


async def test_finalizers_delay_deletion(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CM, {"metadata": {"name": "c", "finalizers": ["example.com/hold"]}, "data": {}})
    status, marked = await call(http, "DELETE", f"{CM}/c")
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    status, err = await call(http, "PATCH", f"{CM}/c", {"metadata": {"finalizers": ["example.com/hold", "new"]}},
                             "application/merge-patch+json")
    assert status == 422 and "no new finalizers" in err["message"]
    status, still = await call(http, "GET", f"{CM}/c")
    assert status == 200 and still["metadata"]["deletionTimestamp"]
    await call(http, "PATCH", f"{CM}/c", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert (await call(http, "GET", f"{CM}/c"))[0] == 404


async def test_owner_deletion_collects_dependents_recursively(http: aiohttp.ClientSession) -> None:
    _, owner = await call(http, "POST", DEPLOY, deployment())
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner["metadata"]["uid"]}
    _, child = await call(http, "POST", CM, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    grandchild_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child["metadata"]["uid"]}
    await call(http, "POST", CM, {"metadata": {"name": "grandchild", "ownerReferences": [grandchild_ref]}})
    await call(http, "POST", CM, {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    await call(http, "DELETE", f"{DEPLOY}/web")
    assert (await call(http, "GET", f"{CM}/child"))[0] == 404
    assert (await call(http, "GET", f"{CM}/grandchild"))[0] == 404


async def test_orphan_propagation_keeps_dependents(http: aiohttp.ClientSession) -> None:
    _, owner = await call(http, "POST", DEPLOY, deployment())
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner["metadata"]["uid"]}
    await call(http, "POST", CM, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    await call(http, "DELETE", f"{DEPLOY}/web?propagationPolicy=Orphan")
    status, child = await call(http, "GET", f"{CM}/child")
    assert status == 200 and "ownerReferences" not in child["metadata"]


async def test_label_and_field_selectors(http: aiohttp.ClientSession) -> None:
    for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {"app": "x"})):
        await call(http, "POST", CM, {"metadata": {"name": name, "labels": labels}})

    async def names(query: str) -> list[str]:
        _, listing = await call(http, "GET", f"{CM}?{query}")
        return sorted(o["metadata"]["name"] for o in listing["items"])

    assert await names("labelSelector=app%3Dx") == ["a", "c"]
    assert await names("labelSelector=app!%3Dx") == ["b"]
    assert await names("labelSelector=app+in+(x,y),tier") == ["a"]
    assert await names("labelSelector=app+notin+(x)") == ["b"]
    assert await names("labelSelector=!tier") == ["b", "c"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    assert await names("fieldSelector=metadata.name!%3Db") == ["a", "c"]
    status, err = await call(http, "GET", f"{CM}?labelSelector=app+in+x")
    assert status == 400 and "labelSelector" in err["message"]


async def test_list_across_namespaces_and_pagination(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})
    for i in range(5):
        await call(http, "POST", CM, {"metadata": {"name": f"c{i}"}})
    await call(http, "POST", "/api/v1/namespaces/other/configmaps", {"metadata": {"name": "o"}})
    _, everything = await call(http, "GET", "/api/v1/configmaps")
    assert len(everything["items"]) == 6 and everything["metadata"]["resourceVersion"]
    _, page = await call(http, "GET", f"{CM}?limit=2")
    assert [o["metadata"]["name"] for o in page["items"]] == ["c0", "c1"]
    token = page["metadata"]["continue"]
    _, rest = await call(http, "GET", f"{CM}?limit=10&continue={token}")
    assert [o["metadata"]["name"] for o in rest["items"]] == ["c2", "c3", "c4"]


async def test_namespace_deletion_removes_its_objects(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": "gone"}})
    await call(http, "POST", "/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "c"}})
    await call(http, "DELETE", "/api/v1/namespaces/gone")
    assert (await call(http, "GET", "/api/v1/namespaces/gone/configmaps/c"))[0] == 404


async def test_invalid_names_and_bodies_are_rejected_clearly(http: aiohttp.ClientSession) -> None:
    status, err = await call(http, "POST", CM, {"metadata": {"name": "Bad_Name"}})
    assert status == 422 and "metadata.name" in err["message"]
    status, err = await call(http, "POST", DEPLOY, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert status == 400 and "does not match" in err["message"]
    async with http.post(CM, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    status, err = await call(http, "GET", "/apis/nope.example.com/v1/things")
    assert status == 404 and err["kind"] == "Status"
    status, err = await call(http, "POST", CM, {"metadata": {"name": "x", "labels": ["not", "a", "map"]}})
    assert status == 422 and err["details"]["causes"][0]["field"] == "metadata.labels"
    status, err = await call(http, "POST", CM, {"metadata": {"name": "x", "ownerReferences": [{"name": "o"}]}})
    assert status == 422 and "metadata.ownerReferences[0].uid" in err["message"]


async def test_scale_subresource(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", DEPLOY, deployment())
    _, scale = await call(http, "GET", f"{DEPLOY}/web/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    _, scale = await call(
        http, "PATCH", f"{DEPLOY}/web/scale", {"spec": {"replicas": 0}}, "application/merge-patch+json"
    )
    _, got = await call(http, "GET", f"{DEPLOY}/web")
    assert got["spec"]["replicas"] == 0


async def test_builtin_defaults_like_a_cluster(http: aiohttp.ClientSession) -> None:
    svc = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    _, created = await call(http, "POST", "/api/v1/namespaces/default/services", svc)
    spec = created["spec"]
    assert spec["type"] == "ClusterIP" and spec["clusterIP"].startswith("10.96.")
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    allocated = created["spec"].pop("clusterIP")
    created["spec"].pop("clusterIPs")
    _, updated = await call(http, "PUT", "/api/v1/namespaces/default/services/web", created)
    assert updated["spec"]["clusterIP"] == allocated, "the allocated IP survives updates that omit it"
    body = deployment()
    del body["spec"]["replicas"]
    _, dep = await call(http, "POST", DEPLOY, body)
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["progressDeadlineSeconds"] == 600
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    _, ns = await call(http, "GET", "/api/v1/namespaces/default")
    assert ns["status"] == {"phase": "Active"}


async def test_generate_name_and_delete_collection(http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        status, created = await call(http, "POST", CM, {"metadata": {"generateName": "job-", "labels": {"a": "b"}}})
        assert status == 201 and created["metadata"]["name"].startswith("job-")
    await call(http, "POST", CM, {"metadata": {"name": "other"}})
    status, deleted = await call(http, "DELETE", f"{CM}?labelSelector=a%3Db")
    assert status == 200 and len(deleted["items"]) == 3
    _, remaining = await call(http, "GET", CM)
    assert [o["metadata"]["name"] for o in remaining["items"]] == ["other"]


async def test_immutable_fields_are_refused(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", DEPLOY, deployment())
    status, err = await call(http, "PATCH", f"{DEPLOY}/web", {"spec": {"selector": {"matchLabels": {"app": "x"}}}},
                             "application/merge-patch+json")
    assert status == 422 and "spec.selector" in err["message"] and "field is immutable" in err["message"]
    await call(http, "POST", CM, {"metadata": {"name": "frozen"}, "data": {"k": "v"}, "immutable": True})
    status, err = await call(http, "PATCH", f"{CM}/frozen", {"data": {"k": "w"}}, "application/merge-patch+json")
    assert status == 422 and err["details"]["causes"][0]["field"] == "data"


async def test_bad_query_parameters_are_400s(http: aiohttp.ClientSession) -> None:
    for query in ("limit=ten", "limit=-1", "watch=true&timeoutSeconds=soon"):
        status, err = await call(http, "GET", f"{CM}?{query}")
        assert status == 400 and query.split("=")[-2].split("&")[-1] in err["message"]
    await call(http, "POST", CM, {"metadata": {"name": "c"}})
    status, err = await call(http, "DELETE", f"{CM}/c", {"preconditions": "yes"})
    assert status == 400 and "preconditions" in err["message"]


async def test_dry_run_changes_nothing(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    before = sb.cluster.store.resource_version
    status, created = await call(http, "POST", f"{CM}?dryRun=All", {"metadata": {"name": "ghost"}})
    assert status == 201 and created["metadata"]["name"] == "ghost"
    assert (await call(http, "GET", f"{CM}/ghost"))[0] == 404
    assert sb.cluster.store.resource_version == before


async def test_namespace_waits_for_finalized_objects(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": "slow"}})
    held = "/api/v1/namespaces/slow/configmaps"
    await call(http, "POST", held, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    await call(http, "POST", held, {"metadata": {"name": "free"}})
    status, ns = await call(http, "DELETE", "/api/v1/namespaces/slow")
    assert status == 200 and ns["status"]["phase"] == "Terminating"
    assert (await call(http, "GET", f"{held}/free"))[0] == 404
    status, err = await call(http, "POST", held, {"metadata": {"name": "late"}})
    assert status == 403 and "being terminated" in err["message"]
    await call(http, "PATCH", f"{held}/held", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert (await call(http, "GET", "/api/v1/namespaces/slow"))[0] == 404


async def test_apply_patch_leaves_the_stored_object_intact(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", DEPLOY, deployment())
    status, _ = await call(http, "PATCH", f"{DEPLOY}/web/status?fieldManager=test", {"status": {"replicas": 1}},
                           "application/apply-patch+yaml")
    assert status == 200
    _, got = await call(http, "GET", f"{DEPLOY}/web")
    assert got["metadata"]["resourceVersion"]
    status, _ = await call(http, "PUT", f"{DEPLOY}/web", got)
    assert status == 200
