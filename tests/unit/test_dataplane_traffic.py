"""Traffic through the simulated Gateway: splits, A/B matches, mirrors, affinity, workload behaviour, counters."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.sandbox.gateway.dataplane import DataPlaneSettings, GatewayDataPlane, Request, TrafficError
from tests.unit.test_dataplane_support import (
    GW,
    FakeCluster,
    Running,
    backend,
    canary_world,
    eventually,
    httproute,
    settle,
)

HOST = "app.example.com"


def _weighted(primary: int, canary: int, **rule: object) -> dict:
    return {"backendRefs": [backend("podinfo-primary", primary), backend("podinfo-canary", canary)], **rule}


def _send(plane: GatewayDataPlane, n: int, request: Request | None = None) -> dict[str, int]:
    hits: dict[str, int] = {}
    for _ in range(n):
        response = plane.handle(request or Request(HOST))
        key = response.backend.name if response.backend else str(response.status)
        hits[key] = hits.get(key, 0) + 1
    return hits


@pytest.mark.parametrize(("primary", "canary"), [(90, 10), (50, 50), (70, 30)])
async def test_weighted_split_follows_the_route_weights(primary: int, canary: int) -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(primary, canary)]))
    async with Running(cluster, DataPlaneSettings(seed=7)) as plane:
        hits = _send(plane, 5000)
        assert abs(hits["podinfo-canary"] / 5000 - canary / 100) < 0.02
        assert plane.stats("test", "podinfo-canary").requests == hits["podinfo-canary"]
        assert plane.route_stats("test", "podinfo").requests == 5000


async def test_weight_zero_is_never_chosen_and_weight_edits_apply_immediately() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(100, 0)]))
    async with Running(cluster, DataPlaneSettings(seed=3)) as plane:
        assert _send(plane, 1000) == {"podinfo-primary": 1000}
        cluster.apply(GW, "httproutes", httproute(rules=[_weighted(0, 100)]))
        await settle(plane)
        assert _send(plane, 100) == {"podinfo-canary": 100}


async def test_same_seed_gives_the_same_traffic() -> None:
    results = []
    for _ in range(2):
        cluster = FakeCluster()
        canary_world(cluster, error_rate="0.2", latency="20ms")
        cluster.apply(GW, "httproutes", httproute(rules=[_weighted(60, 40)]))
        async with Running(cluster, DataPlaneSettings(seed=42)) as plane:
            results.append([(r.backend, r.status, r.latency_ms) for r in map(plane.handle, [Request(HOST)] * 300)])
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("match", "request_"),
    [
        ({"headers": [{"name": "x-canary", "value": "insider"}]}, Request(HOST, headers={"X-Canary": "insider"})),
        (
            {"headers": [{"name": "cookie", "type": "RegularExpression", "value": ".*canary=always.*"}]},
            Request(HOST, headers={"Cookie": "session=1; canary=always"}),
        ),
        ({"queryParams": [{"name": "beta", "value": "true"}]}, Request(HOST, query={"beta": "true"})),
    ],
)
async def test_ab_matches_route_to_the_canary_and_others_to_the_primary(match: dict, request_: Request) -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    rules = [
        {
            "matches": [{**match, "path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [backend("podinfo-primary", 0), backend("podinfo-canary", 100)],
        },
        {"backendRefs": [backend("podinfo-primary", 100)]},
    ]
    cluster.apply(GW, "httproutes", httproute(rules=rules))
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        assert _send(plane, 200, request_) == {"podinfo-canary": 200}
        assert _send(plane, 200) == {"podinfo-primary": 200}


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [({}, 1.0), ({"percent": 25}, 0.25), ({"fraction": {"numerator": 1, "denominator": 10}}, 0.1)],
)
async def test_request_mirror_copies_the_configured_share(mirror: dict, expected: float) -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    rule = {
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "podinfo-canary", "port": 9898}, **mirror},
            }
        ],
        "backendRefs": [backend("podinfo-primary", 100)],
    }
    cluster.apply(GW, "httproutes", httproute(rules=[rule]))
    async with Running(cluster, DataPlaneSettings(seed=5)) as plane:
        hits = _send(plane, 4000)
        assert hits == {"podinfo-primary": 4000}  # mirrored answers never reach the client
        mirrored = plane.stats("test", "podinfo-canary").requests
        assert abs(mirrored / 4000 - expected) < 0.02


async def test_session_affinity_cookie_keeps_a_client_on_the_canary() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cookie = "flagger-cookie=abc123"
    set_cookie = {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": f"{cookie}; Max-Age=3600"}]},
    }
    rules = [
        {
            "matches": [{"headers": [{"name": "Cookie", "type": "RegularExpression", "value": f".*{cookie}.*"}]}],
            "backendRefs": [backend("podinfo-canary", 100)],
        },
        {"backendRefs": [backend("podinfo-primary", 90), backend("podinfo-canary", 10, filters=[set_cookie])]},
    ]
    cluster.apply(GW, "httproutes", httproute(rules=rules))
    async with Running(cluster, DataPlaneSettings(seed=11)) as plane:
        sticky_clients = 0
        for _ in range(200):
            jar: dict[str, str] = {}
            backends = []
            for _ in range(20):
                headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
                response = plane.handle(Request(HOST, headers=headers))
                backends.append(response.backend.name)
                if response.header("set-cookie"):
                    assert response.backend.name == "podinfo-canary"
                    name, _, value = response.header("set-cookie").split(";")[0].partition("=")
                    jar[name] = value
            if "podinfo-canary" in backends:
                first = backends.index("podinfo-canary")
                assert set(backends[first:]) == {"podinfo-canary"}, backends
                sticky_clients += 1
        # About 1 - 0.9**20 of clients land on the canary at least once, and then stay there.
        assert 150 < sticky_clients < 200


async def test_error_rate_and_latency_annotations_show_up_in_the_counters() -> None:
    cluster = FakeCluster()
    canary_world(cluster, error_rate="0.3", latency="50ms")
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(50, 50)]))
    async with Running(cluster, DataPlaneSettings(seed=9)) as plane:
        _send(plane, 4000)
        canary, primary = plane.stats("test", "podinfo-canary"), plane.stats("test", "podinfo-primary")
        assert abs(canary.error_rate - 0.3) < 0.03
        assert primary.errors == 0
        assert 45 < canary.mean_latency_ms < 55
        assert primary.mean_latency_ms < 5
        assert 50 < canary.quantile(0.99) <= 250
        assert plane.counters.workload("test", "podinfo-canary").requests == canary.requests


async def test_workload_without_ready_replicas_answers_503_and_is_not_reported_by_istio() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(0, 100)]))
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        await cluster.patch_status("apps", "deployments", "test", "podinfo-canary", {"readyReplicas": 0})
        await settle(plane)
        assert _send(plane, 50) == {"podinfo-canary": 50}
        assert plane.stats("test", "podinfo-canary").codes == {503: 50}
        assert plane.counters.workload("test", "podinfo-canary").requests == 0


async def test_gateway_answers_404_without_route_and_500_for_unresolved_backends() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[{"backendRefs": [backend("ghost", 1)]}]))
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        assert plane.handle(Request("unknown.example.org")).status == 404
        response = plane.handle(Request(HOST))
        assert response.status == 500
        assert plane.route_stats("test", "podinfo").codes == {500: 1}


async def test_bad_annotations_fall_back_to_defaults() -> None:
    cluster = FakeCluster()
    canary_world(cluster, error_rate="lots", latency="fast")
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(0, 100)]))
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        _send(plane, 200)
        assert plane.stats("test", "podinfo-canary").errors == 0
        workload = plane._workloads[("test", "podinfo-canary")]
        assert workload is not None
        assert any("error-rate" in p and "between 0 and 1" in p for p in workload.problems)
        assert any("latency" in p and "not a duration" in p for p in workload.problems)


async def test_prometheus_text_parses_and_carries_envoy_and_istio_series() -> None:
    cluster = FakeCluster()
    canary_world(cluster, error_rate="0.5")
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(50, 50)]))
    async with Running(cluster, DataPlaneSettings(seed=2)) as plane:
        _send(plane, 1000)
        families = {f.name: f for f in text_string_to_metric_families(plane.counters.prometheus_text())}
        upstream = families["envoy_cluster_upstream_rq"].samples
        canary_total = sum(s.value for s in upstream if s.labels["envoy_cluster_name"] == "test_podinfo-canary_9898")
        canary_5xx = sum(
            s.value
            for s in upstream
            if s.labels["envoy_cluster_name"] == "test_podinfo-canary_9898" and s.labels["envoy_response_code"] == "500"
        )
        assert canary_total == plane.stats("test", "podinfo-canary").requests
        assert canary_5xx == plane.stats("test", "podinfo-canary").errors
        buckets = [s for s in families["envoy_cluster_upstream_rq_time"].samples if s.name.endswith("_bucket")]
        assert {s.labels["le"] for s in buckets} >= {"0.5", "1", "5", "+Inf"}
        istio = families["istio_requests"].samples
        assert {s.labels["destination_workload"] for s in istio} == {"podinfo-primary", "podinfo-canary"}
        assert all(s.labels["reporter"] == "destination" for s in istio)
        assert "istio_request_duration_milliseconds" in families
        # The app-level series select pods the way Flagger's gatewayapi builtin checks do.
        app = [s for s in families["http_request_duration_seconds"].samples if s.name.endswith("_count")]
        canary_pods = [s for s in app if re.fullmatch(r"podinfo-canary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
                                                     s.labels["kubernetes_pod_name"])]
        by_status = {s.labels["status"]: s.value for s in canary_pods}
        assert by_status == {"200": canary_total - canary_5xx, "500": canary_5xx}


async def test_traffic_generator_sends_at_the_requested_rate_and_stops() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute(rules=[_weighted(50, 50)]))
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        traffic_id = plane.start_traffic(HOST, rps=2000)
        await eventually(lambda: plane.route_stats("test", "podinfo").requests >= 100)
        assert await plane.stop_traffic(traffic_id) == 1
        stopped_at = plane.route_stats("test", "podinfo").requests
        await asyncio.sleep(0.05)
        assert plane.route_stats("test", "podinfo").requests == stopped_at
        assert plane.traffic() == []


async def test_traffic_generator_with_duration_ends_by_itself() -> None:
    cluster = FakeCluster()
    canary_world(cluster)
    cluster.apply(GW, "httproutes", httproute())
    async with Running(cluster, DataPlaneSettings(seed=1)) as plane:
        plane.start_traffic(HOST, rps=500, duration=0.05)
        await eventually(lambda: all(not t["running"] for t in plane.traffic()))
        assert plane.route_stats("test", "podinfo").requests > 0


async def test_bad_traffic_requests_name_every_field() -> None:
    plane = GatewayDataPlane(DataPlaneSettings(max_rps=100, max_generators=1))
    with pytest.raises(TrafficError) as info:
        plane.start_traffic("", path="nope", rps=1000, colour="red")
    fields = {problem.field for problem in info.value.problems}
    assert fields == {"host", "path", "rps", "colour"}
    plane.start_traffic(HOST, rps=1)
    with pytest.raises(TrafficError, match="at most 1 generators"):
        plane.start_traffic(HOST, rps=1)
    await plane.close()
