"""The raw watch generator against a scripted server: bookmarks, resume, 410 at connect time and in-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from structlog.testing import capture_logs

from flaggerpy.kube.ratelimit import Backoff
from flaggerpy.kube.resources import CONFIGMAPS
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.versions import is_newer
from flaggerpy.kube.watch import Bookmark, Listed, StreamItem, Watcher, WatchEvent
from tests.unit.test_kube_fakeserver import cm, fake_cluster, listing, respond, stream

FAST = WatchSettings(idle_timeout=35, idle_timeout_jitter=0,
                     backoff_initial=0.001, backoff_max=0.005, backoff_jitter=0.0)


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(rv: int) -> dict[str, Any]:
    return ev("BOOKMARK", {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}})


def gone() -> dict[str, Any]:
    return ev("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"})


async def take(items: AsyncIterator[StreamItem], n: int) -> list[StreamItem]:
    out = []
    async with asyncio.timeout(5):
        while len(out) < n:
            out.append(await anext(items))
    return out


def summary(items: list[StreamItem]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if isinstance(item, WatchEvent):
            out.append((item.type, f"{item.object['metadata']['name']}@{item.object['metadata']['resourceVersion']}"))
        elif isinstance(item, Listed):
            out.append(("RELISTED" if item.relist else "LISTED", item.resource_version))
        elif isinstance(item, Bookmark):
            out.append(("BOOKMARK", item.resource_version))
    return out


async def test_bookmarks_advance_the_resume_version() -> None:
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("a", 3)),
            stream(bookmark(15), ev("MODIFIED", cm("a", 17)), bookmark(20)),
            stream(ev("MODIFIED", cm("a", 21))),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST)
        items = watcher.events()
        got = await take(items, 6)
        assert summary(got) == [
            ("ADDED", "a@3"),
            ("LISTED", "10"),
            ("BOOKMARK", "15"),
            ("MODIFIED", "a@17"),
            ("BOOKMARK", "20"),
            ("MODIFIED", "a@21"),
        ]
        await items.aclose()
        watches = [q for _, _, q in script.requests if q.get("watch") == "true"]
        assert [w["resourceVersion"] for w in watches] == ["10", "20"], "resume from the last bookmark"
        assert watches[0]["allowWatchBookmarks"] == "true"
        assert watches[0]["timeoutSeconds"] == "30"


async def test_410_at_connect_time_relists_and_yields_only_the_difference() -> None:
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("same", 1), cm("changed", 2), cm("removed", 3)),
            respond(410, "Expired", "too old resource version"),
            listing(50, cm("same", 1), cm("changed", 40), cm("new", 45)),
            stream(),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST)
        items = watcher.events()
        got = await take(items, 8)
        await items.aclose()
        assert summary(got[:4]) == [
            ("ADDED", "same@1"),
            ("ADDED", "changed@2"),
            ("ADDED", "removed@3"),
            ("LISTED", "10"),
        ]
        assert sorted(summary(got[4:7])) == [("ADDED", "new@45"), ("DELETED", "removed@3"), ("MODIFIED", "changed@40")]
        assert summary(got[7:]) == [("RELISTED", "50")]
        assert watcher.relists == 1
        assert sorted(watcher.known) == ["ns/changed", "ns/new", "ns/same"]


async def test_410_in_stream_relists_without_repeating_delivered_events() -> None:
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("a", 1)),
            stream(ev("ADDED", cm("b", 11)), ev("MODIFIED", cm("a", 12)), gone()),
            # b was already delivered at 11; a moved on to 13 meanwhile; c appeared and went (never seen)
            listing(60, cm("a", 13), cm("b", 11)),
            stream(ev("DELETED", cm("b", 61))),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST)
        items = watcher.events()
        got = await take(items, 7)
        await items.aclose()
        assert summary(got) == [
            ("ADDED", "a@1"),
            ("LISTED", "10"),
            ("ADDED", "b@11"),
            ("MODIFIED", "a@12"),
            ("MODIFIED", "a@13"),
            ("RELISTED", "60"),
            ("DELETED", "b@61"),
        ]
        watches = [q for _, _, q in script.requests if q.get("watch") == "true"]
        assert [w["resourceVersion"] for w in watches] == ["10", "60"]


async def test_dropped_stream_resumes_from_last_version_and_skips_replays() -> None:
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("a", 1)),
            stream(ev("MODIFIED", cm("a", 12))),
            respond(503, "ServiceUnavailable", "apiserver restarting"),
            stream(ev("MODIFIED", cm("a", 12)), ev("MODIFIED", cm("a", 14))),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST)
        items = watcher.events()
        got = await take(items, 4)
        await items.aclose()
        assert summary(got) == [("ADDED", "a@1"), ("LISTED", "10"), ("MODIFIED", "a@12"), ("MODIFIED", "a@14")]
        watches = [q["resourceVersion"] for _, _, q in script.requests if q.get("watch") == "true"]
        assert watches[:3] == ["10", "12", "12"]


def test_is_newer_compares_integers_and_treats_other_versions_as_opaque() -> None:
    assert is_newer("11", "9")
    assert not is_newer("9", "11")
    assert not is_newer("abc", "abc")
    assert is_newer("abd", "abc")


async def test_object_recreated_during_a_relist_gap_is_a_delete_then_an_add() -> None:
    before = cm("a", 1)
    before["metadata"]["uid"] = "old-uid"
    after = cm("a", 30)
    after["metadata"]["uid"] = "new-uid"
    async with fake_cluster() as (script, kube):
        script.then(listing(10, before), respond(410, "Expired", "too old"), listing(40, after), stream())
        items = Watcher(kube, CONFIGMAPS, "ns", settings=FAST).events()
        got = await take(items, 5)
        await items.aclose()
        assert summary(got) == [
            ("ADDED", "a@1"),
            ("LISTED", "10"),
            ("DELETED", "a@1"),
            ("ADDED", "a@30"),
            ("RELISTED", "40"),
        ]


async def test_consecutive_410s_relist_further_and_further_apart() -> None:
    """A server that answers 410 to every watch: the first relist is immediate, then the relists back off (the
    reflector's behaviour), instead of thousands of LISTs a second."""
    settings = WatchSettings(idle_timeout=35, idle_timeout_jitter=0, backoff_initial=0.001, backoff_max=0.004,
                             backoff_jitter=0.0)
    async with fake_cluster() as (script, kube):
        for rv in range(10, 70, 10):
            script.then(listing(rv, cm("a", 1)), respond(410, "Expired", "too old resource version"))
        script.then(listing(70, cm("a", 1)), stream())
        items = Watcher(kube, CONFIGMAPS, "ns", settings=settings).events()
        with capture_logs() as logs:
            got = await take(items, 8)
        await items.aclose()
        assert summary(got)[-1] == ("RELISTED", "70")
        delays = [entry["retry_in"] for entry in logs if entry["event"] == "watch expired; relisting"]
        assert delays == [0.0, 0.001, 0.002, 0.004, 0.004, 0.004]
        lists = [q for _, _, q in script.requests if q.get("watch") != "true"]
        assert len(lists) == 7, "one LIST per 410, no more"


def test_backoff_starts_over_after_a_quiet_period() -> None:
    now = [0.0]
    backoff = Backoff(1.0, 8.0, 0.5, 60.0, immediate_first=True, clock=lambda: now[0], rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.0, 1.5, 2.5, 4.5, 8.5, 8.5]
    now[0] = 59.0
    assert backoff.next_delay() == 8.5, "59 s after the last one is not quiet"
    now[0] = 119.0
    assert backoff.next_delay() == 0.0, "60 s without one is: start over"
    backoff.reset()
    assert backoff.next_delay() == 0.0


async def test_each_stream_asks_for_a_jittered_timeout_inside_the_idle_timeout() -> None:
    async with fake_cluster() as (script, kube):
        script.then(listing(10, cm("a", 1)), *[stream(ev("MODIFIED", cm("a", 11 + i))) for i in range(6)])
        settings = WatchSettings(idle_timeout=60, idle_timeout_jitter=30, server_timeout_margin=5,
                                 backoff_initial=0.001, backoff_max=0.002, backoff_jitter=0.0)
        items = Watcher(kube, CONFIGMAPS, "ns", settings=settings).events()
        await take(items, 8)
        await items.aclose()
        timeouts = [int(q["timeoutSeconds"]) for _, _, q in script.requests if q.get("watch") == "true"]
        assert all(55 <= t < 85 for t in timeouts), timeouts
        assert len(set(timeouts)) > 1, "jittered, so many watches do not reconnect in step"
