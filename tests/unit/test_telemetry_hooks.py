"""The observer hooks the kube layer offers telemetry, and the Recorder methods the controller calls."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.kube.resources import CONFIGMAPS
from flaggerpy.kube.watch import ReconnectReason, Watcher
from flaggerpy.kube.workqueue import WorkQueue
from flaggerpy.telemetry import Recorder
from tests.unit.test_kube_fakeserver import cm, fake_cluster, listing, respond, stream
from tests.unit.test_kube_watch import FAST, ev, gone, take


def samples(recorder: Recorder) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = recorder.exposition().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_work_queue_reports_its_depth_on_every_change() -> None:
    depths: list[int] = []
    queue: WorkQueue[str] = WorkQueue(name="t", on_depth=depths.append)
    queue.add("a")
    queue.add("b")
    queue.add("a")  # already queued: no change, no report
    key = await queue.get()
    queue.add(key)  # held by a worker: queued again only when done
    queue.done(key)
    await queue.shutdown(drain=False)
    assert depths == [1, 2, 1, 2, 0]


async def test_watcher_tells_why_it_reconnects() -> None:
    reasons: list[ReconnectReason] = []
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("a", 1)),
            stream(ev("MODIFIED", cm("a", 11))),  # the server hangs up early
            respond(503, "ServiceUnavailable", "apiserver restarting"),
            stream(gone()),
            listing(20, cm("a", 11)),
            stream(ev("ERROR", {"kind": "Status", "code": 500, "message": "etcd unavailable"})),
            stream(ev("MODIFIED", cm("a", 21))),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST, on_reconnect=reasons.append)
        items = watcher.events()
        await take(items, 5)
        await items.aclose()
    assert reasons == ["dropped", "error", "gone", "error"]


async def test_a_failing_reconnect_observer_does_not_stop_the_watch() -> None:
    def broken(_: ReconnectReason) -> None:
        raise RuntimeError("observer bug")

    async with fake_cluster() as (script, kube):
        script.then(listing(10), stream(), stream(ev("ADDED", cm("a", 11))))
        items = Watcher(kube, CONFIGMAPS, "ns", settings=FAST, on_reconnect=broken).events()
        got = await take(items, 2)
        await items.aclose()
    assert got[-1].object["metadata"]["name"] == "a"  # type: ignore[union-attr]


def test_recorder_counts_outcomes_with_flaggers_labels() -> None:
    recorder = Recorder()
    recorder.count_outcome("podinfo", "test", "canary", "completed", succeeded=True)
    recorder.count_outcome("podinfo", "test", "blue-green", "skipped", succeeded=True)
    recorder.count_outcome("podinfo", "test", "ab-testing", "completed", succeeded=False)
    got = samples(recorder)
    base = {("name", "podinfo"), ("namespace", "test")}
    assert got[("flagger_canary_successes_total",
                frozenset(base | {("deployment_strategy", "canary"), ("analysis_status", "completed")}))] == 1
    assert got[("flagger_canary_successes_total",
                frozenset(base | {("deployment_strategy", "blue-green"), ("analysis_status", "skipped")}))] == 1
    assert got[("flagger_canary_failures_total",
                frozenset(base | {("deployment_strategy", "ab-testing"), ("analysis_status", "completed")}))] == 1


def test_recorder_publishes_a_status_and_controller_health() -> None:
    recorder = Recorder()
    recorder.record_status("podinfo", "test", {"phase": "Progressing", "canaryWeight": 30, "metricHistory": [
        {"name": "latency", "value": 510.0}, {"name": "latency", "value": 480.0}, {"name": "errors"}]})
    recorder.set_canary_total("test", 3)
    recorder.observe_analysis("podinfo", "test", 0.02)
    recorder.set_queue_depth(4)
    recorder.observe_reconcile("canary", "conflict", 0.003)
    recorder.count_watch_reconnect("canaries.flagger.app", "gone")
    got = samples(recorder)
    ns = ("namespace", "test")
    assert got[("flagger_canary_status", frozenset({("name", "podinfo"), ns}))] == 0
    assert got[("flagger_canary_weight", frozenset({("workload", "podinfo"), ns}))] == 30
    assert got[("flagger_canary_weight", frozenset({("workload", "podinfo-primary"), ns}))] == 70
    assert got[("flagger_canary_metric_analysis", frozenset({("name", "podinfo"), ns, ("metric", "latency")}))] == 480
    assert ("flagger_canary_metric_analysis", frozenset({("name", "podinfo"), ns, ("metric", "errors")})) not in got
    assert got[("flagger_canary_total", frozenset({ns}))] == 3
    assert got[("flagger_canary_duration_seconds_count", frozenset({("name", "podinfo"), ns}))] == 1
    assert got[("flaggerpy_workqueue_depth", frozenset())] == 4
    assert got[("flaggerpy_reconcile_duration_seconds_count",
                frozenset({("controller", "canary"), ("result", "conflict")}))] == 1
    assert got[("flaggerpy_watch_reconnects_total",
                frozenset({("resource", "canaries.flagger.app"), ("reason", "gone")}))] == 1


async def test_depth_hook_sees_delayed_keys_when_they_become_due() -> None:
    depths: list[int] = []
    reported = asyncio.Event()

    def on_depth(depth: int) -> None:
        depths.append(depth)
        reported.set()

    queue: WorkQueue[str] = WorkQueue(name="t", on_depth=on_depth)
    queue.add_after("a", 0.01)
    assert depths == []
    async with asyncio.timeout(2):
        await reported.wait()
    assert depths == [1]
    await queue.shutdown(drain=False)


def test_a_deleted_canary_leaves_no_series_behind() -> None:
    recorder = Recorder()
    for target in ("podinfo", "other"):
        recorder.record_status(target, "test", {"phase": "Progressing", "canaryWeight": 10,
                                                "metricHistory": [{"name": "error-rate", "value": 0.5}]})
        recorder.observe_analysis(target, "test", 0.1)
        recorder.count_outcome(target, "test", "canary", "completed", succeeded=True)
    recorder.forget_canary("podinfo", "test")
    left = {dict(labels).get("name") or dict(labels).get("workload") for _, labels in samples(recorder)}
    assert "podinfo" not in left and "podinfo-primary" not in left
    assert {"other", "other-primary"} <= left
