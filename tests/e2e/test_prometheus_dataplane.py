"""The builtin checks and Flagger's Gateway API templates, exactly as the controller runs them, against the
sandbox's simulated Gateway: through a real Prometheus scraping it, and through the sandbox's own PromQL endpoint
that demos use. Every flavour (Istio, Envoy/Contour, application metrics) sees the canary's annotated 25% error
rate and 20 ms latency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flaggerpy.analysis.base import StepContext
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.sandbox import Sandbox
from tests.e2e.prometheus_fixture import SANDBOX_FLAVOURS, PrometheusServer, ScrapeTarget, requires_prometheus
from tests.integration.test_dataplane_sandbox import CRDS, HOST, install, ready
from tests.unit.test_analysis_fixtures import Lookup, canary, template
from tests.unit.test_analysis_templates import FLAGGER_ENVOY_LATENCY, FLAGGER_ERROR_RATE

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}")]

SUCCESS = 100 * (1 - 0.25)  # the sandbox.flaggerpy.io/error-rate annotation of the canary Deployment
CANARY_REQUESTS = 'sum(increase(envoy_cluster_upstream_rq{envoy_cluster_name=~"test_podinfo-canary.*"}[10s]))'
# The bounds below are +-15 points around a 25% error rate: with this many canary requests in the window that is
# more than five standard deviations, so the checks measure the data plane rather than the luck of a small sample.
ENOUGH_CANARY_REQUESTS = 250
RPS = 400


async def _measure(prometheus_url: str) -> dict[str, dict[str, float | None]]:
    """Each flavour's builtin values, and the two Flagger templates, as MetricChecker reports them."""
    lookup = Lookup(
        [
            template("latency", "test", FLAGGER_ENVOY_LATENCY, {"type": "prometheus", "address": prometheus_url}),
            # The blog's error-rate query filters reporter="source"; the sandbox reports as the destination.
            template(
                "error-rate",
                "test",
                FLAGGER_ERROR_RATE.replace('"source"', '"destination"'),
                {"type": "prometheus", "address": prometheus_url},
            ),
        ]
    )
    subject = canary(
        [
            {"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "interval": "10s", "thresholdRange": {"max": 500}},
            {"name": "latency", "interval": "10s", "templateRef": {"name": "latency"}, "thresholdRange": {"max": 1}},
            {
                "name": "error-rate",
                "interval": "10s",
                "templateRef": {"name": "error-rate"},
                "thresholdRange": {"max": 1},
            },
        ],
        metricsServer=prometheus_url,
    )
    measured: dict[str, dict[str, float | None]] = {}
    for flavour in SANDBOX_FLAVOURS:
        async with MetricChecker(lookup, MetricSettings(builtin_flavour=flavour)) as checker:
            results = await checker.check_metrics(subject, StepContext("Progressing", "x"))
        assert [r.error for r in results if r.value is None] == [], flavour
        measured[flavour] = {r.name: r.value for r in results}
    return measured


def _assert_canary_seen(measured: dict[str, dict[str, float | None]]) -> None:
    for flavour, values in measured.items():
        success, p99 = values["request-success-rate"], values["request-duration"]
        latency, errors = values["latency"], values["error-rate"]
        assert success is not None and p99 is not None and latency is not None and errors is not None
        # Statistical bounds around the annotated behaviour.
        assert SUCCESS - 15 < success < SUCCESS + 15, (flavour, success)
        assert 5 < p99 < 500, (flavour, p99)
        assert 0.005 < latency < 0.5, (flavour, latency)  # the blog's template answers seconds
        assert 100 - SUCCESS - 15 < errors < 100 - SUCCESS + 15, (flavour, errors)


@requires_prometheus
async def test_builtin_checks_through_a_real_prometheus(tmp_path: Path) -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        target = ScrapeTarget(f"127.0.0.1:{sb.port}", "/sandbox/dataplane/metrics")
        async with PrometheusServer([target], tmp_path / "prometheus") as prom:
            traffic = sb.dataplane.start_traffic(HOST, rps=RPS)
            try:
                await prom.wait_for_value(f"{CANARY_REQUESTS} > {ENOUGH_CANARY_REQUESTS}")
                measured = await _measure(prom.url)
            finally:
                await sb.dataplane.stop_traffic(traffic)
    _assert_canary_seen(measured)


async def test_builtin_checks_through_the_sandbox_promql_endpoint() -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        assert sb.promql is not None
        url = f"{sb.url}/sandbox/prometheus"
        traffic = sb.dataplane.start_traffic(HOST, rps=RPS)
        try:
            enough = {"min": ENOUGH_CANARY_REQUESTS}
            probe = canary(
                [{"name": "canary-requests", "query": CANARY_REQUESTS, "interval": "10s", "thresholdRange": enough}],
                metricsServer=url,
            )
            async with MetricChecker(Lookup()) as checker, asyncio.timeout(30):
                # The sandbox scrapes once a second; wait until the window holds enough canary requests.
                while True:
                    (result,) = await checker.check_metrics(probe, StepContext("Progressing", "x"))
                    if result.passed:
                        break
                    await asyncio.sleep(0.2)
            measured = await _measure(url)
        finally:
            await sb.dataplane.stop_traffic(traffic)
    _assert_canary_seen(measured)
