"""Gateways of other controllers (Traefik) running against the sandbox: not programmed, their status left alone."""

from __future__ import annotations

from flaggerpy.sandbox.gateway.dataplane import CONTROLLER_NAME, DataPlaneSettings, Request
from tests.unit.test_dataplane_support import GW, FakeCluster, Running, canary_world, gateway, httproute, settle

TRAEFIK = "traefik.io/gateway-controller"


def gateway_class(name: str, controller: str) -> dict:
    return {"apiVersion": f"{GW}/v1", "kind": "GatewayClass", "metadata": {"name": name},
            "spec": {"controllerName": controller}}


def traefik_gateway() -> dict:
    gw = gateway("traefik")
    gw["spec"]["gatewayClassName"] = "traefik"
    return gw


def parents(cluster: FakeCluster) -> list[dict]:
    route = cluster.get(GW, "httproutes", "test", "podinfo")
    assert route is not None
    return (route.get("status") or {}).get("parents") or []


async def test_traefik_gateways_get_no_status_and_no_traffic_from_the_sandbox() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "gatewayclasses", gateway_class("traefik", TRAEFIK))
    cluster.apply(GW, "gateways", traefik_gateway())
    # Traefik's own entry on the route is kept as it wrote it.
    traefik_entry = {"parentRef": {"name": "traefik", "namespace": "infra"}, "controllerName": TRAEFIK,
                     "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
    route = httproute(parent={"name": "traefik", "namespace": "infra"})
    route["status"] = {"parents": [traefik_entry]}
    cluster.apply(GW, "httproutes", route)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        await settle(plane)
        assert "status" not in (cluster.get(GW, "gateways", "infra", "traefik") or {})
        assert "status" not in (cluster.get(GW, "gatewayclasses", None, "traefik") or {})
        assert parents(cluster) == [traefik_entry]
        assert plane.handle(Request("app.example.com", "/"), ("infra", "traefik")).status == 404
        # The sandbox's own Gateway is still programmed as before.
        assert cluster.get(GW, "gateways", "infra", "gw")["status"]["conditions"][0]["status"] == "True"


async def test_a_route_attached_to_both_keeps_one_entry_per_controller() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "gatewayclasses", gateway_class("traefik", TRAEFIK))
    cluster.apply(GW, "gateways", traefik_gateway())
    route = httproute()
    route["spec"]["parentRefs"].append({"name": "traefik", "namespace": "infra"})
    cluster.apply(GW, "httproutes", route)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        await settle(plane)
        ours = [p for p in parents(cluster) if p["controllerName"] == CONTROLLER_NAME]
        assert [p["parentRef"]["name"] for p in ours] == ["gw"]


async def test_the_flag_adds_controllers_and_a_class_switch_hands_a_gateway_over() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "gatewayclasses", gateway_class("sandbox", "example.com/other-gateway"))
    cluster.apply(GW, "httproutes", httproute())
    settings = DataPlaneSettings(seed=1, other_controllers=frozenset({TRAEFIK, "example.com/other-gateway"}))
    async with Running(cluster, settings) as plane:
        await settle(plane)
        assert "status" not in (cluster.get(GW, "gateways", "infra", "gw") or {})
        assert not [p for p in parents(cluster) if p["controllerName"] == CONTROLLER_NAME]
        cluster.apply(GW, "gatewayclasses", gateway_class("sandbox", CONTROLLER_NAME))
        await settle(plane)
        assert [p["controllerName"] for p in parents(cluster)] == [CONTROLLER_NAME]
        assert plane.handle(Request("app.example.com", "/"), ("infra", "gw")).status == 200
