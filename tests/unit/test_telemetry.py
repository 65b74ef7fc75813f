"""The /metrics, /healthz and /readyz endpoints as a scraper and a kubelet see them."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.telemetry import HealthChecks, Recorder, build_app


async def test_metrics_use_flaggers_names_and_labels() -> None:
    recorder = Recorder()
    recorder.set_info("gatewayapi:v1")
    recorder.set_status("podinfo", "test", "Failed")
    recorder.set_weight("podinfo", "test", primary=80, canary=20)
    recorder.set_metric("podinfo", "test", "request-success-rate", 99.5)
    async with TestClient(TestServer(build_app(recorder, HealthChecks()))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("flagger_canary_status", (("name", "podinfo"), ("namespace", "test")))] == 2
    assert samples[("flagger_canary_weight", (("namespace", "test"), ("workload", "podinfo-primary")))] == 80
    assert samples[("flagger_canary_weight", (("namespace", "test"), ("workload", "podinfo")))] == 20
    metric_key = ("metric", "request-success-rate")
    assert samples[("flagger_canary_metric_analysis", (metric_key, ("name", "podinfo"), ("namespace", "test")))] == 99.5


async def test_readyz_follows_the_readiness_callback() -> None:
    leading = {"now": False}
    health = HealthChecks(ready=lambda: leading["now"])
    async with TestClient(TestServer(build_app(Recorder(), health))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        leading["now"] = True
        assert (await client.get("/readyz")).status == 200


async def test_readyz_says_whether_this_replica_leads() -> None:
    state = {"role": "standby"}
    health = HealthChecks(ready=lambda: True, role=lambda: state["role"])
    async with TestClient(TestServer(build_app(Recorder(), health))) as client:
        standby = await client.get("/readyz")
        assert (standby.status, await standby.text()) == (200, "ready (standby)")
        state["role"] = "leader"
        assert await (await client.get("/readyz")).text() == "ready (leader)"
