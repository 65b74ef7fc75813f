"""Prometheus metrics with Flagger's names, plus the controller's own health, and the HTTP server that serves them.

Flagger's metric names and labels are kept exactly (``flagger_canary_status{name,namespace}`` and so on) so that
dashboards and alerts written for Flagger keep working. prometheus-client does the exposition: its text format,
histogram buckets and registry are what a scraper expects, and hand-writing them would only invite drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flaggerpy import __version__

# Flagger reports 0 while an analysis runs, 2 after a rollback and 1 otherwise.
_STATUS_VALUE = {"Progressing": 0, "Failed": 2}


class Recorder:
    """Every metric the controller exports, in one registry (a fresh one per Recorder, so tests stay isolated)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "flagger_info", "Flagger version and mesh provider information", ["version", "mesh_provider"], registry=r
        )
        self.duration = Histogram(
            "flagger_canary_duration_seconds",
            "Seconds spent performing canary analysis.",
            ["name", "namespace"],
            registry=r,
        )
        self.total = Gauge("flagger_canary_total", "Total number of canary object", ["namespace"], registry=r)
        self.status = Gauge("flagger_canary_status", "Last canary analysis result", ["name", "namespace"], registry=r)
        self.weight = Gauge(
            "flagger_canary_weight", "The route destination weight current value", ["workload", "namespace"], registry=r
        )
        self.analysis = Gauge(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            ["name", "namespace", "metric"],
            registry=r,
        )
        labels = ["name", "namespace", "deployment_strategy", "analysis_status"]
        self.successes = Counter(
            "flagger_canary_successes_total", "Total number of canary successes", labels, registry=r
        )
        self.failures = Counter("flagger_canary_failures_total", "Total number of canary failures", labels, registry=r)
        self.workqueue_depth = Gauge("flaggerpy_workqueue_depth", "Keys waiting in the work queue", registry=r)
        self.reconcile_seconds = Histogram(
            "flaggerpy_reconcile_duration_seconds",
            "Time spent in one reconcile call",
            ["controller", "result"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.watch_reconnects = Counter(
            "flaggerpy_watch_reconnects_total", "Watch streams re-opened", ["resource", "reason"], registry=r
        )
        self.api_requests = Counter(
            "flaggerpy_api_requests_total", "Kubernetes API requests", ["verb", "resource", "code"], registry=r
        )
        self.api_errors = Counter(
            "flaggerpy_api_errors_total",
            "Kubernetes API requests that failed",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.undecodable = Counter(
            "flaggerpy_undecodable_objects_total",
            "Objects skipped because they could not be decoded (nested too deeply)",
            ["resource"],
            registry=r,
        )
        self.leader = Gauge("flaggerpy_leader", "1 while this replica holds the leader lease", registry=r)
        # The labelled children of the request counters, found once per (verb, resource, status): the kube client
        # reports every request, and looking labels up in prometheus-client takes a lock and builds a tuple.
        self._request_counters: dict[tuple[str, str, int], tuple[Counter, Counter | None]] = {}

    def set_info(self, mesh_provider: str) -> None:
        """Publish the version and the default mesh provider."""
        self.info.labels(__version__, mesh_provider).set(1)

    def set_status(self, target: str, namespace: str, phase: str) -> None:
        """Record the canary's phase the way Flagger encodes it (0 running, 1 successful, 2 failed)."""
        self.status.labels(target, namespace).set(_STATUS_VALUE.get(phase, 1))

    def set_weight(self, target: str, namespace: str, primary: int, canary: int) -> None:
        """Record both destination weights; Flagger labels the primary ``<target>-primary``."""
        self.weight.labels(f"{target}-primary", namespace).set(primary)
        self.weight.labels(target, namespace).set(canary)

    def set_metric(self, target: str, namespace: str, metric: str, value: float) -> None:
        """Record the last measured value of one analysis metric."""
        self.analysis.labels(target, namespace, metric).set(value)

    def record_status(self, target: str, namespace: str, status: Mapping[str, Any]) -> None:
        """Publish a persisted Canary status: phase, both weights and each metric's latest value."""
        weight = int(status.get("canaryWeight") or 0)
        self.set_status(target, namespace, str(status.get("phase") or ""))
        self.set_weight(target, namespace, 100 - weight, weight)
        # The history is oldest first: the last sample of each metric is its current value.
        for sample in status.get("metricHistory") or []:
            if sample.get("value") is not None:
                self.set_metric(target, namespace, str(sample.get("name")), float(sample["value"]))

    def set_canary_total(self, namespace: str, count: int) -> None:
        """Record how many canaries ``namespace`` holds."""
        self.total.labels(namespace).set(count)

    def observe_analysis(self, target: str, namespace: str, seconds: float) -> None:
        """Record the time one analysis step took (Flagger observes it per step, not per release)."""
        self.duration.labels(target, namespace).observe(seconds)

    def count_outcome(self, target: str, namespace: str, strategy: str, analysis: str, succeeded: bool) -> None:
        """Count a promotion (``succeeded``) or a rollback, labelled with the strategy and completed/skipped."""
        counter = self.successes if succeeded else self.failures
        counter.labels(target, namespace, strategy, analysis).inc()

    def forget_canary(self, target: str, namespace: str) -> None:
        """Drop every series of a deleted canary, so the registry does not grow with each canary ever seen."""
        for metric in (self.status, self.duration, self.analysis, self.successes, self.failures):
            metric.remove_by_labels({"name": target, "namespace": namespace})
        for workload in (target, f"{target}-primary"):
            self.weight.remove_by_labels({"workload": workload, "namespace": namespace})

    def set_queue_depth(self, depth: int) -> None:
        """Record the work queue's depth."""
        self.workqueue_depth.set(depth)

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        """Record one reconcile call's latency and result (success, conflict or error)."""
        self.reconcile_seconds.labels(controller, result).observe(seconds)

    def count_watch_reconnect(self, resource: str, reason: str) -> None:
        """Count a watch re-opened after a failure (dropped, gone or error)."""
        self.watch_reconnects.labels(resource, reason).inc()

    def count_undecodable(self, resource: str, count: int) -> None:
        """Hook for the kube client: ``count`` objects of ``resource`` were skipped as undecodable."""
        self.undecodable.labels(resource).inc(count)

    def observe_api_request(self, verb: str, resource: str, status: int, _seconds: float) -> None:
        """Hook for the kube client: count every request, and the failed ones separately."""
        counters = self._request_counters.get((verb, resource, status))
        if counters is None:
            code = str(status)
            failed = status >= 400 or status == 0
            counters = (self.api_requests.labels(verb, resource, code),
                        self.api_errors.labels(verb, resource, code) if failed else None)
            self._request_counters[(verb, resource, status)] = counters
        requests, errors = counters
        requests.inc()
        if errors is not None:
            errors.inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


@dataclass
class HealthChecks:
    """What /healthz and /readyz answer; each callable is asked per request.

    ``role`` names this replica's part in leader election (``leader`` or ``standby``): /readyz reports it in its
    body, so a person or a probe script can tell the replicas apart while all of them stay ready (a standby has
    warm caches and must be able to take over at once).
    """

    alive: Callable[[], bool] = lambda: True
    ready: Callable[[], bool] = lambda: True
    role: Callable[[], str] = lambda: ""


def build_app(recorder: Recorder, health: HealthChecks) -> web.Application:
    """The aiohttp application serving /metrics, /healthz and /readyz."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=recorder.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok = health.alive()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "unhealthy")

    async def readyz(_: web.Request) -> web.Response:
        ok = health.ready()
        role = health.role()
        text = ("ready" if ok else "not ready") + (f" ({role})" if role else "")
        return web.Response(status=200 if ok else 503, text=text)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(recorder: Recorder, health: HealthChecks, host: str, port: int) -> web.AppRunner:
    """Start the telemetry server; the caller owns the returned runner and calls ``cleanup()`` on shutdown."""
    runner = web.AppRunner(build_app(recorder, health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
