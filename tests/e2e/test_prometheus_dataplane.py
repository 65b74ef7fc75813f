"""The builtin checks, exactly as the controller runs them, against a real Prometheus scraping the sandbox's
simulated Gateway: every flavour (Istio, Envoy/Contour, application metrics) sees the canary's annotated 25%
error rate and 20 ms latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaggerpy.analysis.base import StepContext
from flaggerpy.analysis.builtin import Flavour
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.sandbox import Sandbox
from tests.e2e.prometheus_fixture import PrometheusServer, ScrapeTarget, requires_prometheus
from tests.integration.test_dataplane_sandbox import CRDS, HOST, install, ready
from tests.unit.test_analysis_fixtures import Lookup, canary

pytestmark = [
    pytest.mark.e2e,
    requires_prometheus,
    pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}"),
]

CANARY_ERRORS = 0.25  # the sandbox.flaggerpy.io/error-rate annotation of the canary Deployment


async def test_builtin_checks_measure_the_canary_in_every_flavour(tmp_path: Path) -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        target = ScrapeTarget(f"127.0.0.1:{sb.port}", "/sandbox/dataplane/metrics")
        async with PrometheusServer([target], tmp_path / "prometheus") as prom:
            traffic = sb.dataplane.start_traffic(HOST, rps=200)
            try:
                # rate() over 10s needs two scrapes that both saw canary traffic.
                await prom.wait_for_value(
                    'sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"test_podinfo-canary.*"}[10s])) > 0'
                )
                subject = canary(
                    [
                        {"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}},
                        {"name": "request-duration", "interval": "10s", "thresholdRange": {"max": 500}},
                    ],
                    metricsServer=prom.url,
                )
                measured: dict[Flavour, dict[str, float | None]] = {}
                for flavour in Flavour:
                    async with MetricChecker(Lookup(), MetricSettings(builtin_flavour=flavour)) as checker:
                        results = await checker.check_metrics(subject, StepContext("Progressing", "x"))
                    measured[flavour] = {r.name: r.value for r in results}
                    assert [r.error for r in results if r.value is None] == [], flavour
            finally:
                await sb.dataplane.stop_traffic(traffic)
    for flavour, values in measured.items():
        success, p99 = values["request-success-rate"], values["request-duration"]
        assert success is not None and p99 is not None
        # Statistical bounds around the 75% success rate; the checker would fail this canary (min 99).
        assert 100 * (1 - CANARY_ERRORS) - 15 < success < 100 * (1 - CANARY_ERRORS) + 15, (flavour, success)
        assert 5 < p99 < 500, (flavour, p99)
