"""The data plane over HTTP: control endpoints for other processes, and real HTTP through a Gateway listener."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.sandbox.gateway.dataplane import PORT_ANNOTATION, DataPlaneSettings, GatewayDataPlane
from tests.unit.test_dataplane_support import GW, FakeCluster, Running, backend, canary_world, eventually, httproute

HOST = "app.example.com"


def _client(plane: GatewayDataPlane) -> TestClient:
    app = web.Application()
    app.add_routes(plane.routes())
    return TestClient(TestServer(app))


def _world(cluster: FakeCluster, **annotations: str) -> None:
    canary_world(cluster, **annotations)
    rules = [{"backendRefs": [backend("podinfo-primary", 50), backend("podinfo-canary", 50)]}]
    cluster.apply(GW, "httproutes", httproute(rules=rules))


async def test_one_request_and_stats_over_http() -> None:
    cluster = FakeCluster()
    _world(cluster)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane, _client(plane) as client:
        response = await client.post("/sandbox/dataplane/request", json={"host": HOST, "path": "/"})
        assert response.status == 200
        body = await response.json()
        assert body["status"] == 200
        assert body["route"] == "test/podinfo"
        assert body["backend"] in {"test/podinfo-primary", "test/podinfo-canary"}

        stats = await (await client.get("/sandbox/dataplane/stats")).json()
        assert sum(item["requests"] for item in stats["services"]) == 1
        assert stats["routes"][0]["name"] == "podinfo"

        metrics = await client.get("/sandbox/dataplane/metrics")
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(await metrics.text())}
        assert {"envoy_cluster_upstream_rq", "istio_requests"} <= names

        assert (await client.delete("/sandbox/dataplane/stats")).status == 200
        assert plane.route_stats("test", "podinfo").requests == 0


async def test_traffic_is_started_listed_and_stopped_over_http() -> None:
    cluster = FakeCluster()
    _world(cluster)
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane, _client(plane) as client:
        response = await client.post("/sandbox/dataplane/traffic", json={"host": HOST, "rps": 1000})
        assert response.status == 201
        traffic_id = (await response.json())["id"]
        listed = await (await client.get("/sandbox/dataplane/traffic")).json()
        assert [item["id"] for item in listed["items"]] == [traffic_id]
        await eventually(lambda: plane.route_stats("test", "podinfo").requests > 10)
        response = await client.delete(f"/sandbox/dataplane/traffic/{traffic_id}")
        assert (await response.json()) == {"stopped": 1}
        assert (await client.delete(f"/sandbox/dataplane/traffic/{traffic_id}")).status == 404


async def test_bad_traffic_body_is_a_422_naming_fields() -> None:
    plane = GatewayDataPlane(DataPlaneSettings())
    async with _client(plane) as client:
        response = await client.post("/sandbox/dataplane/traffic", json={"rps": -1, "headers": {"a": 1}})
        assert response.status == 422
        fields = {error["field"] for error in (await response.json())["errors"]}
        assert fields == {"host", "rps", "headers"}
        response = await client.post("/sandbox/dataplane/traffic", data=b"{not json")
        assert response.status == 422
        response = await client.post("/sandbox/dataplane/listen", json={"gateway": "no-slash"})
        assert response.status == 422


async def test_real_http_request_goes_through_the_gateway_listener() -> None:
    cluster = FakeCluster()
    _world(cluster, error_rate="1.0", latency="5ms")
    async with Running(cluster, DataPlaneSettings(seed=1, latency_jitter=0)) as plane, _client(plane) as client:
        response = await client.post("/sandbox/dataplane/listen", json={"gateway": "infra/gw"})
        port = (await response.json())["port"]
        assert await plane.listen("infra", "gw") == port
        assert cluster.get(GW, "gateways", "infra", "gw")["metadata"]["annotations"][PORT_ANNOTATION] == str(port)
        codes: dict[int, int] = {}
        async with aiohttp.ClientSession() as session:
            for _ in range(40):
                async with session.get(f"http://127.0.0.1:{port}/api?x=1", headers={"Host": HOST}) as reply:
                    codes[reply.status] = codes.get(reply.status, 0) + 1
                    if reply.status == 200:
                        assert (await reply.json())["workload"] == "podinfo-primary"
            async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": "nobody.example"}) as reply:
                assert reply.status == 404
        # The canary is annotated to fail every request; the primary never fails.
        assert codes[200] == plane.stats("test", "podinfo-primary").requests
        assert codes[500] == plane.stats("test", "podinfo-canary").errors
        assert plane.stats("test", "podinfo-canary").mean_latency_ms >= 5
    assert plane.ports() == {}
