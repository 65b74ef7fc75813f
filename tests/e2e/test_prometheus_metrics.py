"""Flagger's MetricTemplates and the builtin checks against a REAL Prometheus scraping a tiny test exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from flaggerpy.analysis.base import StepContext
from flaggerpy.analysis.builtin import Flavour
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.analysis.providers import run_query
from flaggerpy.analysis.templates import TemplateModel, render
from flaggerpy.apis.flagger import MetricTemplateProvider
from tests.e2e.prometheus_fixture import PrometheusServer, ScrapeTarget, requires_prometheus
from tests.unit.test_analysis_fixtures import Lookup, canary, template
from tests.unit.test_analysis_templates import FLAGGER_ENVOY_LATENCY, FLAGGER_ERROR_RATE

# One Prometheus for the whole module: starting it and waiting for two scrapes is most of the runtime.
pytestmark = [pytest.mark.e2e, requires_prometheus, pytest.mark.asyncio(loop_scope="module")]

# Per scrape, the canary "podinfo" in "test" serves 90 good and 10 failed requests, all taking 25-50 ms.
GOOD, BAD = 90, 10
ERROR_RATE = 100 * BAD / (GOOD + BAD)
P99_MS = 25 + (50 - 25) * 0.99  # histogram_quantile interpolates linearly inside the (25, 50] bucket


class Exporter:
    """Istio- and Envoy-style request metrics whose counters grow by a fixed amount on every scrape."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.address = ""
        self._runner: web.AppRunner | None = None

    def render(self) -> str:
        self.scrapes += 1
        good, bad, total = GOOD * self.scrapes, BAD * self.scrapes, (GOOD + BAD) * self.scrapes
        lines = ["# TYPE istio_requests_total counter"]
        for reporter in ("source", "destination"):
            labels = f'reporter="{reporter}",destination_workload_namespace="test",destination_workload="podinfo"'
            lines += [
                f'istio_requests_total{{{labels},response_code="200"}} {good}',
                f'istio_requests_total{{{labels},response_code="503"}} {bad}',
            ]
        lines.append("# TYPE istio_request_duration_milliseconds histogram")
        labels = 'reporter="destination",destination_workload_namespace="test",destination_workload="podinfo"'
        lines += _histogram("istio_request_duration_milliseconds", labels, total)
        lines.append("# TYPE envoy_cluster_upstream_rq_time histogram")
        lines += _histogram("envoy_cluster_upstream_rq_time", 'envoy_cluster_name="test_podinfo-canary_9898"', total)
        # The primary's cluster must not leak into the canary's latency.
        lines += _histogram("envoy_cluster_upstream_rq_time", 'envoy_cluster_name="test_podinfo-primary_9898"', 0)
        return "\n".join(lines) + "\n"

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(text=self.render(), content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _histogram(name: str, labels: str, count: int) -> list[str]:
    return [
        f'{name}_bucket{{{labels},le="25"}} 0',
        f'{name}_bucket{{{labels},le="50"}} {count}',
        f'{name}_bucket{{{labels},le="+Inf"}} {count}',
        f"{name}_sum{{{labels}}} {count * 40}",
        f"{name}_count{{{labels}}} {count}",
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prometheus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusServer]:
    exporter = Exporter()
    await exporter.start()
    try:
        async with PrometheusServer([ScrapeTarget(exporter.address)], tmp_path_factory.mktemp("prom")) as server:
            # Two scrapes inside a 10s window are what rate() needs.
            await server.wait_for_value('sum(rate(istio_requests_total{reporter="source"}[10s]))')
            yield server
    finally:
        await exporter.stop()


MODEL = TemplateModel(
    name="podinfo", namespace="test", target="podinfo", service="podinfo", ingress="podinfo", route="podinfo",
    interval="10s",
)  # fmt: skip


async def _run(prometheus: PrometheusServer, query: str) -> float:
    provider = MetricTemplateProvider(type="prometheus", address=prometheus.url)
    async with aiohttp.ClientSession() as session:
        return await run_query(render(query, MODEL), provider, {}, session=session, timeout=5)


async def test_flagger_error_rate_template_on_real_prometheus(prometheus: PrometheusServer) -> None:
    assert await _run(prometheus, FLAGGER_ERROR_RATE) == pytest.approx(ERROR_RATE)


async def test_flagger_envoy_latency_template_on_real_prometheus(prometheus: PrometheusServer) -> None:
    assert await _run(prometheus, FLAGGER_ENVOY_LATENCY) == pytest.approx(P99_MS / 1000)


async def test_builtin_checks_and_a_template_through_the_checker(prometheus: PrometheusServer) -> None:
    lookup = Lookup(
        [template("error-rate", "istio-system", FLAGGER_ERROR_RATE, {"type": "prometheus", "address": prometheus.url})]
    )
    subject = canary(
        [
            {"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 95}},
            {"name": "request-duration", "interval": "10s", "thresholdRange": {"max": 40}},
            {
                "name": "error-rate",
                "interval": "10s",
                "templateRef": {"name": "error-rate", "namespace": "istio-system"},
                "thresholdRange": {"max": 5},
                "dryRun": True,
            },
        ],
        metricsServer=prometheus.url,
    )
    # The exporter speaks Istio's metric names, not the gatewayapi default.
    async with MetricChecker(lookup, MetricSettings(builtin_flavour=Flavour.ISTIO)) as checker:
        results = {r.name: r for r in await checker.check_metrics(subject, StepContext("Progressing", "x"))}
    success, duration, errors = results["request-success-rate"], results["request-duration"], results["error-rate"]
    assert success.value == pytest.approx(100 - ERROR_RATE) and not success.passed  # 90% < 95%
    assert duration.value == pytest.approx(P99_MS) and not duration.passed  # 49.75 ms > 40 ms
    assert errors.value == pytest.approx(ERROR_RATE) and not errors.passed and not errors.fails_step


async def test_a_query_for_a_workload_without_traffic_has_no_data(prometheus: PrometheusServer) -> None:
    lookup = Lookup()
    subject = canary(
        [{"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}, "onNoData": "skip"}],
        name="idle",
        metricsServer=prometheus.url,
    )
    async with MetricChecker(lookup) as checker:
        (result,) = await checker.check_metrics(subject, StepContext("Progressing", "x"))
    assert result.skipped and result.passed and result.value is None
