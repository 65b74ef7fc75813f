"""Real tools against the simulated Gateway: hey sends HTTP through it, a real Prometheus scrapes its metrics and
Flagger's own PromQL (Contour/Envoy, Istio and gatewayapi flavours) answers from them."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.gateway.dataplane import PORT_ANNOTATION
from tests.integration.test_dataplane_sandbox import CRDS, GW, HOST, install, ready
from tests.ports import free_port
from tests.tools import PROMETHEUS_MISSING, needs_hey

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}"),
    needs_hey,
]

# Flagger's documented Gateway API (Contour) error-rate MetricTemplate query, with its variables filled in.
ENVOY_ERROR_RATE = (
    '100 - sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+",'
    ' envoy_response_code!~"5.*"}[1m])) / sum(rate(envoy_cluster_upstream_rq{'
    'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"}[1m])) * 100'
)
ENVOY_P99 = (
    "histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{"
    'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"}[1m])) by (le))'
)
# Flagger's builtin Istio request-success-rate and gatewayapi (application metrics) request-success-rate.
ISTIO_SUCCESS = (
    'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="test",'
    ' destination_workload=~"podinfo", response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{'
    'reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo"}[1m])) * 100'
)
APP_SUCCESS = (
    'sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",'
    ' kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*"}[1m])) /'
    ' sum(rate(http_request_duration_seconds_count{kubernetes_namespace="test",'
    ' kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[1m])) * 100'
)
CANARY_TOTAL = 'sum(envoy_cluster_upstream_rq{envoy_cluster_name="test_podinfo-canary_9898"})'


async def _query(session: aiohttp.ClientSession, base: str, promql: str) -> float | None:
    try:
        async with session.get(f"{base}/api/v1/query", params={"query": promql}) as reply:
            body = await reply.json()
    except aiohttp.ClientError:
        return None
    result = body.get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else None


async def _until_value(session: aiohttp.ClientSession, base: str, promql: str, want: float | None = None,
                       within: float = 60.0) -> float:
    """The query's value once it is a number (and ``want``, if given); fails with the last answer seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await _query(session, base, promql)
        if value is not None and value == value and (want is None or value == want):
            return value
        if loop.time() > deadline:
            wanted = "a number" if want is None else want
            raise AssertionError(f"{promql}: {value} after {within}s, wanted {wanted}")
        await asyncio.sleep(0.5)


async def test_prometheus_scrapes_the_gateway_and_flagger_queries_work() -> None:
    if shutil.which("prometheus") is None:
        pytest.skip(PROMETHEUS_MISSING)
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        gateway_port = await sb.dataplane.listen("infra", "public")
        prom_port = free_port()
        with tempfile.TemporaryDirectory(prefix="flaggerpy-prom-") as tmp:
            config = Path(tmp) / "prometheus.yml"
            config.write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                "- job_name: sandbox-gateway\n"
                "  metrics_path: /sandbox/dataplane/metrics\n"
                f"  static_configs: [{{targets: ['127.0.0.1:{sb.port}']}}]\n"
            )
            prometheus = await asyncio.create_subprocess_exec(
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{prom_port}"
            try:
                async with aiohttp.ClientSession() as session:
                    # Traffic must span several scrapes for rate() to see it, so wait for the first one.
                    await _until_value(session, base, 'up{job="sandbox-gateway"}', 1.0)
                hey = await asyncio.create_subprocess_exec(
                    "hey",
                    "-z",
                    "4s",
                    "-q",
                    "50",
                    "-c",
                    "2",
                    "-host",
                    HOST,
                    f"http://127.0.0.1:{gateway_port}/",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                async with asyncio.timeout(60):
                    assert await hey.wait() == 0
                canary = sb.dataplane.stats("test", "podinfo-canary")
                assert canary.requests > 0
                async with aiohttp.ClientSession() as session:
                    # Prometheus holds exactly what the Gateway counted...
                    await _until_value(session, base, CANARY_TOTAL, float(canary.requests))
                    # ...and Flagger's queries, unchanged, see the canary's annotated behaviour.
                    error_rate = await _until_value(session, base, ENVOY_ERROR_RATE)
                    assert 0 < error_rate < 100
                    assert await _until_value(session, base, ENVOY_P99) >= 15
                    istio = await _until_value(session, base, ISTIO_SUCCESS)
                    app = await _until_value(session, base, APP_SUCCESS)
                    assert 0 < istio < 100 and 0 < app < 100
            finally:
                prometheus.terminate()
                await prometheus.wait()


async def test_hey_sends_real_http_through_the_gateway() -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        async with (
            aiohttp.ClientSession(base_url=sb.url) as client,
            client.post("/sandbox/dataplane/listen", json={"gateway": "infra/public"}) as reply,
        ):
            port = (await reply.json())["port"]
        gateway = sb.cluster.get(GW, "gateways", "infra", "public")
        assert gateway["metadata"]["annotations"][PORT_ANNOTATION] == str(port)
        process = await asyncio.create_subprocess_exec(
            "hey", "-n", "200", "-c", "4", "-host", HOST, f"http://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, _ = await process.communicate()
        assert process.returncode == 0
        assert "[200]" in out.decode()
        primary, canary = sb.dataplane.stats("test", "podinfo-primary"), sb.dataplane.stats("test", "podinfo-canary")
        assert primary.requests + canary.requests == 200
        assert canary.requests > 0 and primary.errors == 0
        assert canary.mean_latency_ms >= 15
