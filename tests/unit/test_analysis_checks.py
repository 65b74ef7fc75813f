"""MetricChecker: resolution of metrics, thresholdRange judging, onNoData, dryRun and concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.base import HookType, StepContext, WebhookResult
from flaggerpy.analysis.builtin import Flavour
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.apis.flagger import Canary
from tests.ports import free_port
from tests.unit.test_analysis_fixtures import Lookup, canary, template
from tests.unit.test_provider_fake_backend import FakeBackend, Recorded, running_backend

STEP = StepContext(phase="Progressing", checksum="abc", canary_weight=10, iteration=1)


@pytest.fixture
async def prom() -> AsyncIterator[FakeBackend]:
    async with running_backend() as fake:
        yield fake


def answers(backend: FakeBackend, values: dict[str, str | None]) -> None:
    """Answer each PromQL query with the value of the first key it contains (None: an empty vector)."""

    async def handler(req: Recorded) -> web.StreamResponse:
        query = req.query["query"]
        for needle, value in values.items():
            if needle in query:
                result = [] if value is None else [{"metric": {}, "value": [1.7e9, value]}]
                return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})
        return web.json_response({"status": "error", "error": f"unexpected query {query}"}, status=400)

    backend.respond(handler)


def prom_template(name: str, namespace: str, url: str, query: str, **provider: Any) -> Any:
    return template(name, namespace, query, {"type": "prometheus", "address": url, **provider})


async def check(subject: Canary, lookup: Lookup | None = None, **settings: Any) -> dict[str, Any]:
    async with MetricChecker(lookup or Lookup(), MetricSettings(**settings)) as checker:
        results = await checker.check_metrics(subject, STEP)
    return {r.name: r for r in results}


@pytest.mark.parametrize(
    ("value", "passed"),
    [("98.9", False), ("99", True), ("99.5", True), ("100", True), ("100.1", False)],
)
async def test_threshold_range_is_inclusive_at_both_ends(prom: FakeBackend, value: str, passed: bool) -> None:
    answers(prom, {"errors_total": value})
    lookup = Lookup([prom_template("ok-rate", "test", prom.url, 'sum(errors_total{ns="{{ namespace }}"})')])
    subject = canary([{"name": "ok", "templateRef": {"name": "ok-rate"}, "thresholdRange": {"min": 99, "max": 100}}])
    result = (await check(subject, lookup))["ok"]
    assert result.passed is passed
    assert result.value == float(value)
    assert (result.min, result.max) == (99, 100)
    assert result.fails_step is not passed
    if not passed:
        assert result.error and ("below the minimum 99" in result.error or "above the maximum 100" in result.error)


async def test_builtin_checks_query_the_canary_metrics_server_with_istio_metrics(prom: FakeBackend) -> None:
    answers(prom, {"histogram_quantile": "250", "istio_requests_total": "99.9"})
    subject = canary(
        [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
        ],
        metricsServer=prom.url,
    )
    results = await check(subject, metrics_server="http://unused.invalid:9090", builtin_flavour=Flavour.ISTIO)
    assert results["request-success-rate"].passed and results["request-success-rate"].value == 99.9
    assert results["request-duration"].passed and results["request-duration"].value == 250
    sent = sorted(r.query["query"] for r in prom.requests)
    assert 'destination_workload_namespace="test", destination_workload=~"podinfo"' in sent[1]
    assert "[30s]" in sent[1] and "[1m]" in sent[0]


async def test_builtin_checks_default_to_flaggers_gatewayapi_queries(prom: FakeBackend) -> None:
    # Flagger's HttpObserver (pkg/metrics/observers/http.go) serves gatewayapi canaries: the app's own histogram.
    answers(prom, {"histogram_quantile": "250", "http_request_duration_seconds_count": "99.5"})
    subject = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}},
                      {"name": "request-duration", "thresholdRange": {"max": 500}}])
    results = await check(subject, metrics_server=prom.url)
    assert results["request-success-rate"].value == 99.5
    assert results["request-duration"].value == 250
    sent = " ".join(r.query["query"] for r in prom.requests)
    assert "http_request_duration_seconds_bucket" in sent and sent.count(" * 1000") == 1  # seconds to ms, as Flagger
    assert 'kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"' in sent
    assert 'status!~"5.*"' in sent


async def test_builtin_checks_use_the_controller_metrics_server_and_flavour(prom: FakeBackend) -> None:
    answers(prom, {"envoy_cluster_upstream_rq": "100"})
    subject = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}}])
    results = await check(subject, metrics_server=prom.url, builtin_flavour=Flavour.ENVOY)
    assert results["request-success-rate"].passed
    assert 'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"' in prom.last.query["query"]


async def test_legacy_threshold_is_a_minimum_for_success_rate(prom: FakeBackend) -> None:
    answers(prom, {"istio_requests_total": "95"})
    subject = canary([{"name": "request-success-rate", "threshold": 99}], metricsServer=prom.url)
    result = (await check(subject, builtin_flavour=Flavour.ISTIO))["request-success-rate"]
    assert not result.passed and result.min == 99


async def test_template_in_another_namespace_with_credentials_from_its_namespace(prom: FakeBackend) -> None:
    answers(prom, {"latency": "0.2"})
    lookup = Lookup(
        [prom_template("latency", "flagger-system", prom.url, "latency{}", secretRef={"name": "prom-auth"})],
        secrets={("flagger-system", "prom-auth"): {"token": "t0ken"}},
    )
    subject = canary(
        [
            {
                "name": "p99",
                "templateRef": {"name": "latency", "namespace": "flagger-system"},
                "thresholdRange": {"max": 1},
            }
        ]
    )
    assert (await check(subject, lookup))["p99"].passed
    assert lookup.secret_requests == [("flagger-system", "prom-auth")]
    assert prom.last.headers["Authorization"] == "Bearer t0ken"


async def test_no_cross_namespace_refs_refuses_a_template_elsewhere_and_reads_no_secret(prom: FakeBackend) -> None:
    answers(prom, {"latency": "0.2"})
    lookup = Lookup(
        [prom_template("latency", "flagger-system", prom.url, "latency{}", secretRef={"name": "prom-auth"})],
        secrets={("flagger-system", "prom-auth"): {"token": "t0ken"}},
    )
    subject = canary([{"name": "p99", "templateRef": {"name": "latency", "namespace": "flagger-system"},
                       "thresholdRange": {"max": 1}}])
    result = (await check(subject, lookup, same_namespace_only=True))["p99"]
    assert not result.passed
    assert result.error is not None and "-no-cross-namespace-refs" in result.error
    assert "flagger-system/latency" in result.error
    assert lookup.secret_requests == []


async def test_a_missing_template_or_secret_fails_the_check_naming_it(prom: FakeBackend) -> None:
    lookup = Lookup([prom_template("needs-auth", "test", prom.url, "x", secretRef={"name": "gone"})])
    subject = canary(
        [
            {"name": "a", "templateRef": {"name": "nope"}, "thresholdRange": {"max": 1}},
            {"name": "b", "templateRef": {"name": "needs-auth"}, "thresholdRange": {"max": 1}},
        ]
    )
    results = await check(subject, lookup)
    assert not results["a"].passed and results["a"].error == "MetricTemplate test/nope not found"
    assert not results["b"].passed and "Secret test/gone" in (results["b"].error or "")
    assert prom.requests == []


async def test_a_template_error_fails_the_check_naming_the_variable(prom: FakeBackend) -> None:
    lookup = Lookup([prom_template("bad", "test", prom.url, 'x{dir="{{ variables.direction }}"}')])
    subject = canary([{"name": "bad", "templateRef": {"name": "bad"}, "thresholdRange": {"max": 1}}])
    result = (await check(subject, lookup))["bad"]
    assert not result.passed and "variables.direction" in (result.error or "")


async def test_no_data_fails_by_default_and_is_skipped_on_request(prom: FakeBackend) -> None:
    answers(prom, {"": None})
    lookup = Lookup([prom_template("t", "test", prom.url, "rate(x[1m])")])
    subject = canary(
        [
            {"name": "strict", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}},
            {"name": "lenient", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}, "onNoData": "skip"},
        ]
    )
    results = await check(subject, lookup)
    assert not results["strict"].passed and not results["strict"].skipped
    assert "no values found" in (results["strict"].error or "")
    assert results["lenient"].passed and results["lenient"].skipped and results["lenient"].value is None


async def test_dry_run_reports_a_failure_without_failing_the_step(prom: FakeBackend) -> None:
    answers(prom, {"errors": "12"})
    lookup = Lookup([prom_template("errors", "test", prom.url, "errors")])
    subject = canary([{"name": "e", "templateRef": {"name": "errors"}, "thresholdRange": {"max": 5}, "dryRun": True}])
    result = (await check(subject, lookup))["e"]
    assert result.value == 12 and not result.passed and result.dry_run
    assert not result.fails_step


async def test_checks_run_concurrently(prom: FakeBackend) -> None:
    arrived: list[str] = []
    both_in_flight = asyncio.Event()

    async def handler(req: Recorded) -> web.StreamResponse:
        arrived.append(req.query["query"])
        if len(arrived) == 2:
            both_in_flight.set()
        # Sequential checks would leave the first request waiting here until its timeout.
        await asyncio.wait_for(both_in_flight.wait(), timeout=5)
        return web.json_response({"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}})

    prom.respond(handler)
    lookup = Lookup([prom_template("a", "test", prom.url, "a"), prom_template("b", "test", prom.url, "b")])
    subject = canary(
        [
            {"name": "a", "templateRef": {"name": "a"}, "thresholdRange": {"max": 1}},
            {"name": "b", "templateRef": {"name": "b"}, "thresholdRange": {"max": 1}},
        ]
    )
    results = await check(subject, lookup, query_timeout=10)
    assert results["a"].passed and results["b"].passed


async def test_a_slow_provider_times_out_alone(prom: FakeBackend) -> None:
    answers(prom, {"fast": "1"})
    async with running_backend() as slow:
        slow.hang()
        lookup = Lookup(
            [prom_template("fast", "test", prom.url, "fast"), prom_template("slow", "test", slow.url, "slow")]
        )
        subject = canary(
            [
                {"name": "slow", "templateRef": {"name": "slow"}, "thresholdRange": {"max": 5}},
                {"name": "fast", "templateRef": {"name": "fast"}, "thresholdRange": {"max": 5}},
            ]
        )
        results = await check(subject, lookup, query_timeout=0.5)
        assert len(slow.requests) == 1
    assert results["fast"].passed and results["fast"].value == 1
    assert not results["slow"].passed and results["slow"].error == "prometheus: no answer within 0.5s"


class _Hooks:
    def __init__(self) -> None:
        self.calls: list[HookType] = []

    async def run(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        self.calls.append(hook_type)
        return [WebhookResult(name="gate", type=hook_type, passed=True, status_code=200)]


async def test_the_analyzer_composes_metrics_and_webhooks(prom: FakeBackend) -> None:
    answers(prom, {"istio_requests_total": "100"})
    hooks = _Hooks()
    settings = MetricSettings(metrics_server=prom.url, builtin_flavour=Flavour.ISTIO)
    async with MetricChecker(Lookup(), settings) as metrics:
        analyzer = CanaryAnalyzer(metrics, hooks)
        subject = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}}])
        assert [r.passed for r in await analyzer.check_metrics(subject, STEP)] == [True]
        hook_results = await analyzer.run_webhooks(subject, HookType.PRE_ROLLOUT, STEP)
    assert [r.name for r in hook_results] == ["gate"]
    assert hooks.calls == [HookType.PRE_ROLLOUT]


def test_settings_reject_unknown_flavours_and_bad_timeouts() -> None:
    with pytest.raises(ValueError, match="flavour 'linkerd' is unknown"):
        MetricSettings(builtin_flavour="linkerd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be > 0"):
        MetricSettings(query_timeout=0)


async def test_no_data_on_a_builtin_check_hints_at_missing_traffic(prom: FakeBackend) -> None:
    answers(prom, {"": None})
    subject = canary([{"name": "request-duration", "thresholdRange": {"max": 500}}], metricsServer=prom.url)
    result = (await check(subject))["request-duration"]
    assert not result.passed
    assert result.error == (
        "prometheus: no values found (the query matched no series): probably podinfo.test gets no traffic"
    )


async def test_an_infinite_value_is_judged_but_not_reported_as_a_number(prom: FakeBackend) -> None:
    answers(prom, {"slow": "+Inf", "fast": "-Inf"})
    lookup = Lookup([prom_template("slow", "test", prom.url, "slow"), prom_template("fast", "test", prom.url, "fast")])
    subject = canary(
        [
            {"name": "slow", "templateRef": {"name": "slow"}, "thresholdRange": {"max": 500}},
            {"name": "fast", "templateRef": {"name": "fast"}, "thresholdRange": {"max": 500}},
        ]
    )
    results = await check(subject, lookup)
    assert results["slow"].value is None and not results["slow"].passed
    assert results["slow"].error == "value inf is above the maximum 500"
    assert results["fast"].value is None and results["fast"].passed


async def test_a_bad_metrics_server_names_where_it_came_from() -> None:
    from_canary = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}}], metricsServer="prom:9090")
    result = (await check(from_canary))["request-success-rate"]
    assert result.error == "spec.metricsServer 'prom:9090' is not an http(s) URL"
    from_flag = canary([{"name": "request-duration", "thresholdRange": {"max": 1}}])
    result = (await check(from_flag, metrics_server="prometheus"))["request-duration"]
    assert result.error == "the controller's --metrics-server 'prometheus' is not an http(s) URL"


async def test_an_unreachable_prometheus_is_named_not_reported_as_no_data() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    lookup = Lookup([prom_template("rate", "test", url, "up")])
    subject = canary([{"name": "rate", "templateRef": {"name": "rate"}, "thresholdRange": {"min": 1}}])
    results = await check(subject, lookup, query_timeout=5)
    assert not results["rate"].passed and results["rate"].value is None
    assert results["rate"].error.startswith(f"Prometheus unreachable: cannot reach {url}")
