"""Gateway and route status, as `kubectl get gateway/httproute -o yaml` would show them."""

from __future__ import annotations

import asyncio

from flaggerpy.sandbox.gateway.dataplane import CONTROLLER_NAME, DataPlaneSettings, Request
from tests.unit.test_dataplane_support import (
    GW,
    FakeCluster,
    Running,
    backend,
    canary_world,
    gateway,
    httproute,
    service,
    settle,
)


def _conditions(obj: dict, parent: int = 0) -> dict[str, dict]:
    entry = obj["status"]["parents"][parent]
    assert entry["controllerName"] == CONTROLLER_NAME
    return {c["type"]: c for c in entry["conditions"]}


def _route(cluster: FakeCluster, name: str = "podinfo") -> dict:
    route = cluster.get(GW, "httproutes", "test", name)
    assert route is not None
    return route


async def test_gateway_is_accepted_programmed_and_counts_attached_routes() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute())
    async with Running(cluster, DataPlaneSettings(seed=1)):
        gw = cluster.get(GW, "gateways", "infra", "gw")
        conditions = {c["type"]: c["status"] for c in gw["status"]["conditions"]}
        assert conditions == {"Accepted": "True", "Programmed": "True"}
        assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
        [listener] = gw["status"]["listeners"]
        assert listener["attachedRoutes"] == 1
        assert {"group": GW, "kind": "HTTPRoute"} in listener["supportedKinds"]


async def test_route_is_accepted_with_resolved_refs_and_observed_generation() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute())
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        conditions = _conditions(_route(cluster))
        assert conditions["Accepted"]["status"] == "True"
        assert conditions["ResolvedRefs"]["status"] == "True"
        assert conditions["Accepted"]["observedGeneration"] == 1
        assert _route(cluster)["status"]["parents"][0]["parentRef"] == {"name": "gw", "namespace": "infra"}

        edited = httproute(rules=[{"backendRefs": [backend("podinfo-primary", 90), backend("podinfo-canary", 10)]}])
        cluster.apply(GW, "httproutes", edited)
        await settle(plane)
        conditions = _conditions(_route(cluster))
        assert _route(cluster)["metadata"]["generation"] == 2
        assert conditions["Accepted"]["observedGeneration"] == 2
        assert conditions["ResolvedRefs"]["observedGeneration"] == 2


async def test_missing_gateway_is_no_matching_parent() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(parent={"name": "nope", "namespace": "infra"}))
    async with Running(cluster, DataPlaneSettings()):
        accepted = _conditions(_route(cluster))["Accepted"]
        assert (accepted["status"], accepted["reason"]) == ("False", "NoMatchingParent")
        assert "nope" in accepted["message"]


async def test_missing_backend_service_is_backend_not_found_and_recovers_when_created() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    rules = [{"backendRefs": [backend("podinfo-primary", 90), backend("ghost", 10)]}]
    cluster.apply(GW, "httproutes", httproute(rules=rules))
    async with Running(cluster, DataPlaneSettings()) as plane:
        resolved = _conditions(_route(cluster))["ResolvedRefs"]
        assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
        assert "test/ghost" in resolved["message"]
        assert _conditions(_route(cluster))["Accepted"]["status"] == "True"

        cluster.apply("", "services", service("ghost"))
        await settle(plane)
        assert _conditions(_route(cluster))["ResolvedRefs"]["status"] == "True"


async def test_section_name_and_allowed_routes_are_honoured() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(
        GW,
        "gateways",
        gateway(
            "private",
            listeners=[{"name": "web", "protocol": "HTTP", "port": 80}],  # allowedRoutes default: Same namespace
        ),
    )
    cluster.apply(GW, "httproutes", httproute("wrong-section", parent={"name": "gw", "namespace": "infra",
                                                                       "sectionName": "https"}))
    cluster.apply(GW, "httproutes", httproute("other-ns", parent={"name": "private", "namespace": "infra"}))
    async with Running(cluster, DataPlaneSettings()):
        wrong = _conditions(_route(cluster, "wrong-section"))["Accepted"]
        assert (wrong["status"], wrong["reason"]) == ("False", "NoMatchingParent")
        other = _conditions(_route(cluster, "other-ns"))["Accepted"]
        assert (other["status"], other["reason"]) == ("False", "NotAllowedByListeners")


async def test_cross_namespace_backend_needs_a_reference_grant() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply("", "services", service("shared", namespace="other"))
    rules = [{"backendRefs": [backend("shared", namespace="other")]}]
    cluster.apply(GW, "httproutes", httproute(rules=rules))
    async with Running(cluster, DataPlaneSettings()) as plane:
        resolved = _conditions(_route(cluster))["ResolvedRefs"]
        assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")
        cluster.apply(
            GW,
            "referencegrants",
            {
                "metadata": {"name": "allow-test", "namespace": "other"},
                "spec": {
                    "from": [{"group": GW, "kind": "HTTPRoute", "namespace": "test"}],
                    "to": [{"group": "", "kind": "Service"}],
                },
            },
        )
        await settle(plane)
        assert _conditions(_route(cluster))["ResolvedRefs"]["status"] == "True"


async def test_invalid_match_is_reported_on_the_route_naming_the_field() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    rules = [{"matches": [{"path": {"type": "RegularExpression", "value": "(("}}],
              "backendRefs": [backend("podinfo-primary")]}]
    cluster.apply(GW, "httproutes", httproute(rules=rules))
    async with Running(cluster, DataPlaneSettings()):
        accepted = _conditions(_route(cluster))["Accepted"]
        assert (accepted["status"], accepted["reason"]) == ("False", "UnsupportedValue")
        assert "spec.rules[0].matches[0].path.value" in accepted["message"]


async def test_status_is_written_only_when_it_changes_and_other_controllers_entries_are_kept() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    route = httproute()
    route["spec"]["parentRefs"].append({"kind": "Service", "group": "", "name": "mesh"})
    cluster.apply(GW, "httproutes", route)
    cluster.objects[(GW, "httproutes")][("test", "podinfo")]["status"] = {
        "parents": [{"parentRef": {"name": "mesh", "kind": "Service", "group": ""},
                     "controllerName": "mesh.example/controller", "conditions": []}]
    }
    async with Running(cluster, DataPlaneSettings()) as plane:
        parents = _route(cluster)["status"]["parents"]
        assert [p["controllerName"] for p in parents] == ["mesh.example/controller", CONTROLLER_NAME]
        writes = len(cluster.status_writes)
        # A change that alters nothing the data plane reports must not cause writes.
        cluster.apply("apps", "deployments", cluster.get("apps", "deployments", "test", "podinfo-canary"))
        cluster.apply(GW, "httproutes", _route(cluster))
        await settle(plane)
        assert len(cluster.status_writes) == writes


async def test_deleting_the_gateway_detaches_the_route() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute())
    async with Running(cluster, DataPlaneSettings()) as plane:
        assert _conditions(_route(cluster))["Accepted"]["status"] == "True"
        cluster.delete(GW, "gateways", "infra", "gw")
        await settle(plane)
        assert _conditions(_route(cluster))["Accepted"]["reason"] == "NoMatchingParent"


async def test_grpcroute_gets_status_and_serves_its_methods() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(
        GW,
        "grpcroutes",
        {
            "metadata": {"name": "greeter", "namespace": "test"},
            "spec": {
                "parentRefs": [{"name": "gw", "namespace": "infra"}],
                "hostnames": ["grpc.example.com"],
                "rules": [
                    {"matches": [{"method": {"service": "pkg.Greeter", "method": "Hello"}}],
                     "backendRefs": [backend("podinfo-canary")]},
                    {"backendRefs": [backend("podinfo-primary")]},
                ],
            },
        },
    )
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        conditions = _conditions(cluster.get(GW, "grpcroutes", "test", "greeter"))
        assert conditions["Accepted"]["status"] == "True"
        hello = plane.handle(Request("grpc.example.com", "/pkg.Greeter/Hello", "POST"))
        other = plane.handle(Request("grpc.example.com", "/pkg.Greeter/Bye", "POST"))
        assert (hello.backend.name, other.backend.name) == ("podinfo-canary", "podinfo-primary")
        assert hello.route.kind == "GRPCRoute"


async def test_a_malformed_route_does_not_stop_the_others_from_being_programmed() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    broken = httproute("broken")
    broken["spec"]["rules"] = [{"backendRefs": "not-a-list"}]
    cluster.apply(GW, "httproutes", broken)
    cluster.apply(GW, "httproutes", httproute())
    async with Running(cluster, DataPlaneSettings()) as plane:
        assert _conditions(_route(cluster))["Accepted"]["status"] == "True"
        assert plane.handle(Request("app.example.com")).status == 200


async def test_programming_delay_postpones_status_and_routing() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    async with Running(cluster, DataPlaneSettings(programming_delay=0.3)) as plane:
        cluster.apply(GW, "httproutes", httproute())
        await asyncio.sleep(0.01)
        assert "status" not in _route(cluster)
        assert plane.handle(Request("app.example.com")).status == 404
        await settle(plane)
        assert _conditions(_route(cluster))["Accepted"]["status"] == "True"
        assert plane.handle(Request("app.example.com")).status == 200


async def test_only_gateway_classes_naming_our_controller_are_accepted() -> None:
    cluster = FakeCluster()
    for name, controller in (("ours", CONTROLLER_NAME), ("theirs", "example.com/other")):
        cluster.apply(GW, "gatewayclasses", {"metadata": {"name": name}, "spec": {"controllerName": controller}})
    async with Running(cluster, DataPlaneSettings()):
        ours = cluster.get(GW, "gatewayclasses", None, "ours")
        assert [(c["type"], c["status"]) for c in ours["status"]["conditions"]] == [("Accepted", "True")]
        assert "status" not in cluster.get(GW, "gatewayclasses", None, "theirs")


async def test_listener_namespace_selector_and_parent_port() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply("", "namespaces", {"metadata": {"name": "test", "labels": {"shared-gateway": "true"}}})
    cluster.apply("", "namespaces", {"metadata": {"name": "other"}})
    selector = {"from": "Selector", "selector": {"matchLabels": {"shared-gateway": "true"}}}
    cluster.apply(
        GW,
        "gateways",
        gateway("shared", listeners=[{"name": "web", "protocol": "HTTP", "port": 8080,
                                      "allowedRoutes": {"namespaces": selector}}]),
    )
    parent = {"name": "shared", "namespace": "infra"}
    cluster.apply(GW, "httproutes", httproute("labelled", parent=parent))
    cluster.apply(GW, "httproutes", httproute("unlabelled", namespace="other", parent=parent))
    cluster.apply(GW, "httproutes", httproute("wrong-port", parent={**parent, "port": 80}))
    async with Running(cluster, DataPlaneSettings()):
        assert _conditions(_route(cluster, "labelled"))["Accepted"]["status"] == "True"
        unlabelled = _conditions(cluster.get(GW, "httproutes", "other", "unlabelled"))["Accepted"]
        assert unlabelled["reason"] == "NotAllowedByListeners"
        assert _conditions(_route(cluster, "wrong-port"))["Accepted"]["reason"] == "NoMatchingParent"
        listener = cluster.get(GW, "gateways", "infra", "shared")["status"]["listeners"][0]
        assert listener["attachedRoutes"] == 1
