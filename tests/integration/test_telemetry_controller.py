"""The controller's /metrics exposition while it runs real releases against the sandbox: what a Flagger dashboard
and an operator scraping flaggerpy would see."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.apiserver.faults import Rule
from flaggerpy.telemetry import Recorder
from tests.integration.conftest import Cluster, RecordingEvents, RecordingNotifier, ScriptedAnalyzer, wait_for
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(recorder: Recorder) -> Samples:
    """Every sample of the exposition, keyed by name and label set (parsed as Prometheus would)."""
    text = recorder.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The sample ``metric`` with exactly ``labels``, or None when absent."""
    return samples.get((metric, frozenset(labels.items())))


def names(samples: Samples) -> set[str]:
    """The sample names present."""
    return {name for name, _ in samples}


@contextlib.asynccontextmanager
async def observed_controller(
    kube: KubeClient, analyzer: ScriptedAnalyzer, recorder: Recorder
) -> AsyncIterator[Controller]:
    """A started controller reporting to ``recorder``, stopped when the block ends."""
    settings = ControllerSettings(
        threadiness=2,
        sync_timeout=10.0,
        engine=EngineSettings(poll_interval=0.2),
        watch=WatchSettings(backoff_initial=0.05, backoff_max=0.5, backoff_jitter=0.05),
    )
    controller = Controller(kube, analyzer, RecordingNotifier(), RecordingEvents(), settings, observer=recorder)
    await controller.start()
    try:
        yield controller
    finally:
        await controller.stop()


async def until(recorder: Recorder, predicate: Callable[[Samples], bool], what: str, within: float = 20.0) -> None:
    """Scrape until ``predicate`` holds."""
    await wait_for(lambda: predicate(scrape(recorder)), within, lambda: f"{what}; scraped: {scrape(recorder)}")


async def test_a_promotion_shows_in_flaggers_metrics(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer
) -> None:
    recorder = Recorder()
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with observed_controller(kube, analyzer, recorder):
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Succeeded", within=30)
        # The sandbox can show Succeeded before the controller has read its own write's response and published it.
        # flagger_canary_status is 1 already while Promoting and Finalising (Flagger's encoding: 0 running,
        # 2 failed, 1 anything else), with the canary's weight still 50: only the success counter, published with
        # the Succeeded status, says that status is out.
        await until(recorder, lambda s: value(s, "flagger_canary_successes_total", name="podinfo", namespace=NAMESPACE,
                                              deployment_strategy="canary", analysis_status="completed") == 1,
                    "the Succeeded status published")
        samples = scrape(recorder)

    assert value(samples, "flagger_canary_total", namespace=NAMESPACE) == 1
    assert value(samples, "flagger_canary_status", name="podinfo", namespace=NAMESPACE) == 1
    assert value(samples, "flagger_canary_weight", workload="podinfo", namespace=NAMESPACE) == 0
    assert value(samples, "flagger_canary_weight", workload="podinfo-primary", namespace=NAMESPACE) == 100
    assert value(samples, "flagger_canary_metric_analysis", name="podinfo", namespace=NAMESPACE,
                 metric="request-success-rate") == 99.9
    # One observation per analysis step: at least the five weights 10..50.
    steps = value(samples, "flagger_canary_duration_seconds_count", name="podinfo", namespace=NAMESPACE)
    assert steps is not None and steps >= 5
    assert value(samples, "flagger_canary_successes_total", name="podinfo", namespace=NAMESPACE,
                 deployment_strategy="canary", analysis_status="completed") == 1
    assert "flagger_canary_failures_total" not in names(samples)
    assert value(samples, "flaggerpy_workqueue_depth") is not None
    reconciles = value(samples, "flaggerpy_reconcile_duration_seconds_count", controller="canary", result="success")
    assert reconciles is not None and reconciles > steps


async def test_a_skipped_analysis_is_counted_as_skipped(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer
) -> None:
    recorder = Recorder()
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(skipAnalysis=True, analysis={
        "interval": "1s", "threshold": 2, "iterations": 3,
    }))
    async with observed_controller(kube, analyzer, recorder):
        await cluster.roll_out(NEW_IMAGE)
        await until(recorder, lambda s: value(
            s, "flagger_canary_successes_total", name="podinfo", namespace=NAMESPACE,
            deployment_strategy="blue-green", analysis_status="skipped") == 1, "skipped blue/green promotion")
    assert not analyzer.metric_calls


async def test_a_rollback_counts_a_failure_and_reports_failed_status(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer
) -> None:
    recorder = Recorder()
    analyzer.metrics_pass = False
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with observed_controller(kube, analyzer, recorder):
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Failed", within=30)
        await until(recorder, lambda s: value(s, "flagger_canary_status", name="podinfo", namespace=NAMESPACE) == 2,
                    "the Failed status published")
        samples = scrape(recorder)
    assert value(samples, "flagger_canary_failures_total", name="podinfo", namespace=NAMESPACE,
                 deployment_strategy="canary", analysis_status="completed") == 1
    assert "flagger_canary_successes_total" not in names(samples)
    assert value(samples, "flagger_canary_status", name="podinfo", namespace=NAMESPACE) == 2


async def test_canary_total_follows_creations_and_deletions(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer
) -> None:
    recorder = Recorder()
    for name in ("one", "two"):
        await cluster.create("apps", "deployments", deployment(name))
        await cluster.create("flagger.app", "canaries", canary(name))
    async with observed_controller(kube, analyzer, recorder):
        await until(recorder, lambda s: value(s, "flagger_canary_total", namespace=NAMESPACE) == 2, "two canaries")
        await cluster.cluster.delete("flagger.app", "canaries", NAMESPACE, "two")
        await until(recorder, lambda s: value(s, "flagger_canary_total", namespace=NAMESPACE) == 1, "one canary")


async def test_dropped_and_expired_watches_are_counted_by_resource_and_reason(
    sandbox: Sandbox, kube: KubeClient, analyzer: ScriptedAnalyzer
) -> None:
    recorder = Recorder()
    async with observed_controller(kube, analyzer, recorder) as controller:
        # Synced caches do not mean open watches yet (each informer lists, then connects): drop only what is open.
        server = sandbox.server
        assert server is not None
        await wait_for(lambda: server.open_watches >= len(controller.informers), 10)
        sandbox.faults.drop_watches()
        await until(recorder, lambda s: value(
            s, "flaggerpy_watch_reconnects_total", resource="canaries.flagger.app", reason="dropped") == 1,
            "a dropped canary watch")
        sandbox.faults.force_gone("deployments")
        sandbox.faults.drop_watches()
        await until(recorder, lambda s: value(
            s, "flaggerpy_watch_reconnects_total", resource="deployments.apps", reason="gone") == 1,
            "an expired deployment watch")
        sandbox.faults.errors.append(Rule(verb="watch", resource="services", code=500))
        sandbox.faults.drop_watches()
        await until(recorder, lambda s: (value(
            s, "flaggerpy_watch_reconnects_total", resource="services", reason="error") or 0) >= 1,
            "a refused service watch")
        sandbox.faults.clear()
