"""The data plane reacts to each change with work for that change only: the writes it makes and what it serves."""

from __future__ import annotations

import asyncio

from flaggerpy.sandbox.gateway.dataplane import CONTROLLER_NAME, DataPlaneSettings, Request
from flaggerpy.sandbox.gateway.table import Resolver, RouteKey, RoutingTable, compile_rules, make_entries
from flaggerpy.sandbox.gateway.workloads import WorkloadIndex
from tests.unit.test_dataplane_support import (
    GW,
    FakeCluster,
    Running,
    backend,
    canary_world,
    deployment,
    eventually,
    httproute,
    service,
    settle,
)


def _accepted(cluster: FakeCluster, name: str, namespace: str = "test") -> tuple[str, int] | None:
    route = cluster.get(GW, "httproutes", namespace, name)
    for parent in ((route or {}).get("status") or {}).get("parents") or []:
        if parent["controllerName"] == CONTROLLER_NAME:
            accepted = next(c for c in parent["conditions"] if c["type"] == "Accepted")
            return accepted["status"], accepted["observedGeneration"]
    return None


def _many_routes(cluster: FakeCluster, count: int) -> None:
    canary_world(cluster)
    for index in range(count):
        cluster.apply(GW, "httproutes", httproute(f"app-{index}", hostnames=[f"app-{index}.example.com"]))


def _weights(primary: int, canary: int) -> list[dict]:
    return [{"backendRefs": [backend("podinfo-primary", primary), backend("podinfo-canary", canary)]}]


async def test_editing_one_route_writes_only_that_routes_status_once() -> None:
    cluster = FakeCluster()
    _many_routes(cluster, 30)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        assert all(_accepted(cluster, f"app-{i}") == ("True", 1) for i in range(30))
        cluster.status_writes.clear()
        cluster.apply(GW, "httproutes", httproute("app-7", hostnames=["app-7.example.com"], rules=_weights(90, 10)))
        await settle(plane)
        # The echo of our own write and the unchanged Gateway (still 30 attached routes) cause nothing more.
        assert cluster.status_writes == [("httproutes", "test", "app-7")]
        assert _accepted(cluster, "app-7") == ("True", 2)


async def test_a_status_only_change_by_someone_else_is_repaired_keeping_their_entries() -> None:
    cluster = FakeCluster()
    _many_routes(cluster, 3)
    async with Running(cluster, DataPlaneSettings()) as plane:
        mesh = {"parentRef": {"name": "mesh", "kind": "Service", "group": ""},
                "controllerName": "mesh.example/controller", "conditions": []}
        await cluster.patch_status(GW, "httproutes", "test", "app-1", {"parents": [mesh]})
        await settle(plane)
        parents = cluster.get(GW, "httproutes", "test", "app-1")["status"]["parents"]
        assert [p["controllerName"] for p in parents] == ["mesh.example/controller", CONTROLLER_NAME]


async def test_attached_routes_follow_creates_and_deletes() -> None:
    cluster = FakeCluster()
    _many_routes(cluster, 4)
    async with Running(cluster, DataPlaneSettings()) as plane:

        def attached() -> int:
            return cluster.get(GW, "gateways", "infra", "gw")["status"]["listeners"][0]["attachedRoutes"]

        assert attached() == 4
        cluster.delete(GW, "httproutes", "test", "app-0")
        await settle(plane)
        assert attached() == 3
        assert plane.handle(Request("app-0.example.com")).status == 404
        assert plane.handle(Request("app-1.example.com")).status == 200


async def test_changing_a_listener_re_evaluates_the_routes_that_name_its_gateway() -> None:
    cluster = FakeCluster()
    _many_routes(cluster, 2)
    async with Running(cluster, DataPlaneSettings()) as plane:
        gateway = cluster.get(GW, "gateways", "infra", "gw")
        gateway["spec"]["listeners"][0]["hostname"] = "app-0.example.com"
        cluster.apply(GW, "gateways", gateway)
        await settle(plane)
        assert _accepted(cluster, "app-0") == ("True", 1)
        assert _accepted(cluster, "app-1") == ("False", 1)
        assert plane.handle(Request("app-1.example.com")).status == 404


async def test_a_new_deployment_revision_changes_behaviour_without_touching_routes() -> None:
    cluster = FakeCluster()
    _many_routes(cluster, 2)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        cluster.apply(GW, "httproutes", httproute("app-0", hostnames=["app-0.example.com"], rules=_weights(0, 100)))
        await settle(plane)
        writes = len(cluster.status_writes)
        cluster.apply("apps", "deployments",
                      deployment("podinfo-canary", annotations={"sandbox.flaggerpy.io/error-rate": "1"}))
        await settle(plane)
        assert plane.handle(Request("app-0.example.com")).status == 500
        assert len(cluster.status_writes) == writes


async def test_a_failed_status_write_is_retried() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    async with Running(cluster, DataPlaneSettings(retry_delay=0.01)):
        cluster.failing_status_writes = 1
        cluster.apply(GW, "httproutes", httproute())
        await eventually(lambda: _accepted(cluster, "podinfo") == ("True", 1))


async def test_after_the_change_stream_ends_the_data_plane_relists_and_keeps_up() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    async with Running(cluster, DataPlaneSettings(retry_delay=0.01)):
        cluster.end_streams()
        await asyncio.sleep(0)
        cluster.apply(GW, "httproutes", httproute())
        await eventually(lambda: _accepted(cluster, "podinfo") == ("True", 1))


async def test_a_route_created_before_its_backend_resolves_when_the_service_appears() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[{"backendRefs": [backend("late", 1)]}]))
    async with Running(cluster, DataPlaneSettings()) as plane:
        assert plane.handle(Request("app.example.com")).status == 500
        cluster.apply("", "services", service("late"))
        cluster.apply("apps", "deployments", deployment("late"))
        await settle(plane)
        assert plane.handle(Request("app.example.com")).status == 200


def _entries(name: str, hostnames: list[str], backend_name: str, created: str = "t1") -> list:
    resolver = Resolver({("test", "a"), ("test", "b")}, [])
    key = RouteKey("HTTPRoute", "test", name)
    rules, _ = compile_rules(key, {"rules": [{"backendRefs": [{"name": backend_name, "port": 80}]}]}, resolver)
    return make_entries(rules, ("infra", "gw"), tuple(hostnames), created)


def _served_by(table: RoutingTable, host: str) -> str | None:
    rule = table.select(Request(host))
    return rule.backends[0].ref.name if rule else None


def test_replacing_a_route_updates_cached_hosts_including_wildcards() -> None:
    table = RoutingTable(_entries("exact", ["x.example.com"], "a"))
    assert _served_by(table, "y.example.com") is None  # cached as "no candidates"
    assert _served_by(table, "x.example.com") == "a"
    table.replace(RouteKey("HTTPRoute", "test", "wild"), _entries("wild", ["*.example.com"], "b"))
    assert _served_by(table, "y.example.com") == "b"
    assert _served_by(table, "x.example.com") == "a"  # an exact hostname still beats the wildcard
    table.replace(RouteKey("HTTPRoute", "test", "exact"), [])
    assert _served_by(table, "x.example.com") == "b"
    assert len(table) == 1
    table.replace(RouteKey("HTTPRoute", "test", "any"), _entries("any", [], "a", created="t0"))
    assert _served_by(table, "other.org") == "a"


def test_workload_index_picks_the_oldest_match_and_follows_label_changes() -> None:
    index = WorkloadIndex(default_latency_ms=2.0)
    index.put_service(service("web", app="web"))
    assert index.resolved[("test", "web")] is None
    newer = deployment("web-b", app="web")
    newer["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    older = deployment("web-a", app="web")
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert index.put_workload("Deployment", newer) == {("test", "web")}
    index.put_workload("Deployment", older)
    assert index.resolved[("test", "web")].name == "web-a"
    relabelled = deployment("web-a", app="other")
    relabelled["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    index.put_workload("Deployment", relabelled)
    assert index.resolved[("test", "web")].name == "web-b"
    index.delete_workload("Deployment", "test", "web-b")
    assert index.resolved[("test", "web")] is None
    index.delete_service("test", "web")
    assert ("test", "web") not in index.resolved
