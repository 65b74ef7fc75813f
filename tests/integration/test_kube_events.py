"""EventRecorder against the sandbox: aggregation into counts, LRU bound, sink, never raising."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.events import EventRecorder
from flaggerpy.kube.resources import CANARIES, EVENTS, NAMESPACES
from flaggerpy.kube.settings import ClientSettings, EventSettings
from flaggerpy.sandbox import Rule, Sandbox

CLIENT = ClientSettings(retry_attempts=2, backoff_initial=0.001, backoff_max=0.01, backoff_jitter=0.0)
CANARY: Obj = {
    "apiVersion": CANARIES.api_version,
    "kind": CANARIES.kind,
    "metadata": {"name": "podinfo", "namespace": "test", "uid": "1234", "resourceVersion": "9"},
}


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Sandbox, KubeClient]]:
    sandbox = Sandbox(workloads=False, dataplane=False)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path), settings=CLIENT) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": "test"}})
        yield sb, kube


async def events(kube: KubeClient) -> list[Obj]:
    items, _ = await kube.list(EVENTS, "test")
    return sorted(items, key=lambda e: e["metadata"]["creationTimestamp"] + e["metadata"]["name"])


async def test_repeats_are_aggregated_into_one_event_with_a_count() -> None:
    sunk: list[Obj] = []
    async with cluster() as (_, kube):
        recorder = EventRecorder(kube, sink=sunk.append)
        for _ in range(3):
            await recorder.normal(CANARY, "Synced", "Advance podinfo.test canary weight 10")
        await recorder.warning(CANARY, "Synced", "Halt podinfo.test advancement success rate 90% < 99%")
        got = await events(kube)
        assert [(e["type"], e["count"]) for e in got] == [("Normal", 3), ("Warning", 1)]
        first = got[0]
        assert first["involvedObject"] == {
            "kind": "Canary",
            "apiVersion": "flagger.app/v1beta1",
            "namespace": "test",
            "name": "podinfo",
            "uid": "1234",
            "resourceVersion": "9",
        }
        assert first["source"]["component"] == "flaggerpy"
        assert first["reason"] == "Synced" and first["message"] == "Advance podinfo.test canary weight 10"
        assert first["lastTimestamp"] >= first["firstTimestamp"]
        assert [e["count"] for e in sunk] == [1, 2, 3, 1]


async def test_an_expired_event_is_recreated_and_the_cache_is_bounded() -> None:
    async with cluster() as (_, kube):
        recorder = EventRecorder(kube, settings=EventSettings(cache_size=2))
        await recorder.normal(CANARY, "Synced", "one")
        (event,) = await events(kube)
        await kube.delete(EVENTS, event["metadata"]["name"], "test")
        await recorder.normal(CANARY, "Synced", "one")
        assert [e["count"] for e in await events(kube)] == [1]
        await recorder.normal(CANARY, "Synced", "two")
        await recorder.normal(CANARY, "Synced", "three")
        assert recorder.cached() == 2


async def test_failures_are_logged_never_raised() -> None:
    async with cluster() as (sb, kube):
        sb.faults.errors.append(Rule(verb="create", resource="events", rate=1.0, code=500))

        def broken_sink(event: Obj) -> None:
            raise RuntimeError("sink down")

        recorder = EventRecorder(kube, sink=broken_sink)
        await recorder.warning(CANARY, "Synced", "cannot write this")
        sb.faults.clear()
        assert await events(kube) == []
        await recorder.warning(CANARY, "Synced", "cannot write this")
        assert [e["count"] for e in await events(kube)] == [1]


async def test_long_messages_are_truncated() -> None:
    async with cluster() as (_, kube):
        recorder = EventRecorder(kube, settings=EventSettings(max_message_length=20))
        await recorder.normal(CANARY, "Synced", "x" * 100)
        (event,) = await events(kube)
        assert event["message"] == "x" * 17 + "..."


async def test_a_failed_count_bump_still_records_the_event() -> None:
    """The count-bump failure path once passed ``event=`` to structlog (a TypeError) and the Event was lost: the
    refused PATCH must be logged and a fresh Event created instead."""
    sunk: list[Obj] = []
    async with cluster() as (sb, kube):
        recorder = EventRecorder(kube, sink=sunk.append)
        await recorder.normal(CANARY, "Synced", "Advance podinfo.test canary weight 10")
        sb.faults.errors.append(Rule(verb="patch", resource="events", rate=1.0, code=403))
        await recorder.normal(CANARY, "Synced", "Advance podinfo.test canary weight 10")
        sb.faults.clear()
        got = await events(kube)
        assert [e["count"] for e in got] == [1, 1], "the repeat became a new Event when its count could not bump"
        assert [e["count"] for e in sunk] == [1, 1], "and reached the sink"
