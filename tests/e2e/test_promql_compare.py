"""The sandbox's PromQL against a real Prometheus: the same queries over the same data plane agree.

Both scrape the sandbox's ``/sandbox/dataplane/metrics`` every second while synthetic traffic flows through a
Gateway to two workloads (one slow and failing 20% of requests); every query is then asked of both at the same
instant. Scrapes happen at different moments, so numbers agree within a tolerance, and label sets exactly (less
the ``job``/``instance`` labels each scraper adds).
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flaggerpy.analysis.builtin import builtin_query
from flaggerpy.analysis.templates import TemplateModel, render
from flaggerpy.apis.flagger import Canary
from flaggerpy.demo import manifests
from flaggerpy.sandbox import Sandbox
from tests.e2e.prometheus_fixture import SANDBOX_FLAVOURS, PrometheusServer, ScrapeTarget, requires_prometheus

pytestmark = [pytest.mark.e2e, requires_prometheus]

NS = "test"
HOST = "compare.example.com"
WINDOW = "10s"
# The longest look-back of any query below (window plus offset), and how long Prometheus may take to cover it: its
# service discovery hands targets to the scrapers only after a few seconds.
LOOKBACK = "15s"
COVERAGE_TIMEOUT = 60.0
SCRAPER_LABELS = ("job", "instance")


def _deployment(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                              "spec": {"containers": [{"name": "app", "image": f"example/{name}:1"}]}}},
    }


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9898}]}}


def _route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "compare", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": manifests.GATEWAY_NAME, "namespace": manifests.GATEWAY_NAMESPACE}],
            "hostnames": [HOST],
            "rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": 70},
                                       {"name": "podinfo-canary", "port": 9898, "weight": 30}]}],
        },
    }


@pytest.fixture
async def traffic_sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox whose Gateway splits 300 req/s 70/30 between a healthy and a slow, failing workload."""
    async with Sandbox(ready_delay=0.05) as sb:
        source = manifests.gateway_crds()
        for crd in [*manifests.flagger_crds(), *source.documents]:
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(crd))
        for namespace in manifests.namespaces():
            await sb.cluster.create("", "namespaces", namespace)
        await sb.cluster.create(manifests.GATEWAY_GROUP, "gatewayclasses", manifests.gateway_class())
        await sb.cluster.create(manifests.GATEWAY_GROUP, "gateways", manifests.gateway())
        # Named like a canary's workloads so the builtin queries for target "podinfo" select the failing one.
        await sb.cluster.create("apps", "deployments", _deployment("podinfo-primary", {}))
        await sb.cluster.create("apps", "deployments", _deployment(
            "podinfo", {manifests.ERROR_RATE_ANNOTATION: "0.2", "sandbox.flaggerpy.io/latency": "120ms"}))
        await sb.cluster.create("", "services", _service("podinfo-primary"))
        canary_service = _service("podinfo-canary")
        canary_service["spec"]["selector"] = {"app": "podinfo"}
        await sb.cluster.create("", "services", canary_service)
        await sb.cluster.create(manifests.GATEWAY_GROUP, "httproutes", _route())
        await sb.dataplane.wait_programmed()
        assert sb.promql is not None
        sb.promql.activate()
        sb.dataplane.start_traffic(HOST, rps=300)
        yield sb


def _rendered(query: str) -> str:
    canary = Canary.from_dict(manifests.canary("http://unused", manifests.Timing(metric_window=WINDOW)))
    metric = canary.spec.analysis.metrics[0]
    return render(query, TemplateModel.for_metric(canary, metric))


def _queries() -> list[tuple[str, float]]:
    """(query, relative tolerance): what the builtin checks, the demo's template and common dashboards ask."""
    builtin = [
        (_rendered(builtin_query(name, flavour)), 0.05)
        for flavour in SANDBOX_FLAVOURS for name in ("request-success-rate", "request-duration")
    ]
    template = _rendered(manifests.metric_template("http://unused")["spec"]["query"])
    cluster = 'envoy_cluster_name=~"test_podinfo-.*"'
    return [
        *builtin,
        (template, 0.15),
        (f"sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq{{{cluster}}}[{WINDOW}]))", 0.1),
        (f"sum without (envoy_response_code, job, instance) (increase(envoy_cluster_upstream_rq{{{cluster}}}"
         f"[{WINDOW}]))", 0.1),
        (f"histogram_quantile(0.5, sum by (le, envoy_cluster_name) "
         f"(rate(envoy_cluster_upstream_rq_time_bucket{{{cluster}}}[{WINDOW}])))", 0.1),
        (f'count(istio_requests_total{{destination_workload_namespace="{NS}"}})', 0.0),
        (f'max by (destination_workload) (istio_requests_total{{destination_workload_namespace="{NS}"}}) > 0', 0.1),
        (f'sum(rate(istio_requests_total{{response_code=~"5.."}}[{WINDOW}])) or vector(0)', 0.15),
        (f"sum(rate(envoy_cluster_upstream_rq{{{cluster}}}[{WINDOW}])) / "
         f"sum(rate(envoy_cluster_upstream_rq{{{cluster}}}[{WINDOW}] offset 3s)) * 100", 0.1),
        (f"avg without (le, job, instance) (rate(istio_request_duration_milliseconds_sum[{WINDOW}]) / "
         f"rate(istio_request_duration_milliseconds_count[{WINDOW}]))", 0.1),
        ("clamp_max(vector(scalar(sum(envoy_cluster_upstream_rq)) * 0 + 42), 40) - 2 ^ 2", 0.0),
    ]


async def _ask(session: aiohttp.ClientSession, base: str, query: str, at: float) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/query", params={"query": query, "time": f"{at:.3f}"},
                           timeout=aiohttp.ClientTimeout(total=10)) as resp:
        answer: dict[str, Any] = await resp.json()
        assert answer.get("status") == "success", (base, query, answer)
        return answer["data"]


def _by_labels(data: dict[str, Any]) -> dict[tuple[tuple[str, str], ...], float]:
    if data["resultType"] == "scalar":
        return {(): float(data["result"][1])}
    return {
        tuple(sorted((k, v) for k, v in item["metric"].items() if k not in SCRAPER_LABELS)): float(item["value"][1])
        for item in data["result"]
    }


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=max(tolerance, 1e-9))


async def _until_covered(prom: PrometheusServer) -> None:
    """Wait until Prometheus holds a sample for every second of the longest look-back (both then see it all)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COVERAGE_TIMEOUT
    wanted = int(LOOKBACK.rstrip("s"))
    while loop.time() < deadline:
        answer = await prom.query(f"count_over_time(up[{LOOKBACK}])")
        result = answer.get("data", {}).get("result") or []
        if result and float(result[0]["value"][1]) >= wanted:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"prometheus did not scrape for {LOOKBACK} within {COVERAGE_TIMEOUT}s")


async def test_sandbox_promql_agrees_with_real_prometheus(traffic_sandbox: Sandbox, tmp_path: Path) -> None:
    sb = traffic_sandbox
    target = ScrapeTarget(f"127.0.0.1:{sb.port}", "/sandbox/dataplane/metrics", job="sandbox-dataplane")
    async with PrometheusServer([target], tmp_path / "prometheus") as prom:
        await _until_covered(prom)
        # A moment both have scraped past, whatever their phases.
        at = time.time() - 1.5
        sandbox_api = f"{sb.url}/sandbox/prometheus"
        mismatches = []
        async with aiohttp.ClientSession() as session:
            for query, tolerance in _queries():
                ours = _by_labels(await _ask(session, sandbox_api, query, at))
                theirs = _by_labels(await _ask(session, prom.url, query, at))
                assert ours, f"sandbox answered nothing for {query}"
                if ours.keys() != theirs.keys():
                    mismatches.append(f"{query}: labels {sorted(ours)} != {sorted(theirs)}")
                    continue
                for labels, value in ours.items():
                    if not _close(value, theirs[labels], tolerance):
                        mismatches.append(f"{query} {dict(labels)}: sandbox {value} vs prometheus {theirs[labels]}")
    assert not mismatches, "\n".join(mismatches)


async def test_unsupported_promql_is_refused_as_bad_data_by_the_sandbox(traffic_sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        params = {"query": "topk(3, envoy_cluster_upstream_rq)"}
        async with session.post(f"{traffic_sandbox.url}/sandbox/prometheus/api/v1/query", data=params) as resp:
            answer = await resp.json()
            assert resp.status == 400
    assert answer["status"] == "error"
    assert answer["errorType"] == "bad_data"
    assert "topk() is not supported" in answer["error"]
