"""The raw watch against the sandbox: bookmarks keep a quiet watch's version fresh so a resume needs no relist."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.resources import CONFIGMAPS, NAMESPACES
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import Bookmark, Listed, StreamItem, Watcher, WatchEvent
from flaggerpy.sandbox import Sandbox

FAST = WatchSettings(idle_timeout=35, idle_timeout_jitter=0,
                     backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.01)


async def test_bookmarks_let_a_quiet_watch_resume_after_the_history_moved_on() -> None:
    # History of 50 events; 200 writes elsewhere. Without bookmarks the resume version would be too old (410).
    sandbox = Sandbox(workloads=False, dataplane=False, history_size=50, bookmark_interval=0.05)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path)) as kube:
        for ns in ("quiet", "busy"):
            await kube.create(NAMESPACES, {"metadata": {"name": ns}})
        watcher = Watcher(kube, CONFIGMAPS, "quiet", settings=FAST)
        received: asyncio.Queue[StreamItem] = asyncio.Queue()

        async def consume() -> None:
            async for got in watcher.events():
                received.put_nowait(got)

        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            assert isinstance(await received.get(), Listed)
            for i in range(200):
                last = await kube.create(CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "busy"}})
            target = int(last["metadata"]["resourceVersion"])
            while True:
                item = await received.get()
                assert isinstance(item, Bookmark), "nothing happens in the quiet namespace"
                if int(item.resource_version) >= target:
                    break
            sb.faults.drop_watches()
            await kube.create(CONFIGMAPS, {"metadata": {"name": "hello", "namespace": "quiet"}})
            while not isinstance(item := await received.get(), WatchEvent):
                assert isinstance(item, Bookmark)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        assert item.type == "ADDED" and item.object["metadata"]["name"] == "hello"
        assert watcher.relists == 0


async def test_forced_410_relists_and_reports_only_changes() -> None:
    sandbox = Sandbox(workloads=False, dataplane=False, bookmark_interval=0.05)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path)) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": "w"}})
        for name in ("keep", "change", "drop"):
            await kube.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": "w"}, "data": {"v": "1"}})
        watcher = Watcher(kube, CONFIGMAPS, "w", settings=FAST)
        items = watcher.events()
        async with asyncio.timeout(10):
            initial = [await anext(items) for _ in range(4)]
            assert isinstance(initial[-1], Listed)
            sb.faults.force_gone("configmaps")
            sb.faults.drop_watches()
            changed = await kube.patch(CONFIGMAPS, "change", "w", {"data": {"v": "2"}})
            await kube.delete(CONFIGMAPS, "drop", "w")
            got = []
            while not isinstance(item := await anext(items), Listed):
                if isinstance(item, WatchEvent):
                    got.append((item.type, item.object["metadata"]["name"], item.object["metadata"]["resourceVersion"]))
        await items.aclose()
        assert watcher.relists == 1
        assert sorted((kind, name) for kind, name, _ in got) == [("DELETED", "drop"), ("MODIFIED", "change")]
        assert ("MODIFIED", "change", changed["metadata"]["resourceVersion"]) in got


async def test_a_server_that_keeps_answering_410_gets_relists_further_apart() -> None:
    """Before: 3,602 LISTs in 3 s against a server that answers every watch with 410. The relists now back off
    (the first at once, then doubling from 50 ms up to 0.4 s), so a LIST follows each 410 and no more."""
    settings = WatchSettings(idle_timeout=35, idle_timeout_jitter=0, backoff_initial=0.05, backoff_max=0.4,
                             backoff_jitter=0.0)
    sandbox = Sandbox(workloads=False, dataplane=False, bookmark_interval=0.05)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path)) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": "w"}})
        await kube.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "w"}})
        watcher = Watcher(kube, CONFIGMAPS, "w", settings=settings)
        items = watcher.events()
        async with asyncio.timeout(10):
            while not isinstance(await anext(items), Listed):
                pass
            lists_before = sb.counters.get("list", "configmaps")
            sb.faults.force_gone("configmaps", 10_000)
            sb.faults.drop_watches()
            relisted = 0
            with capture_logs() as logs:
                while relisted < 6:  # 0 + 0.05 + 0.1 + 0.2 + 0.4 s of backoff at least
                    item = await anext(items)
                    relisted += isinstance(item, Listed)
        lists = sb.counters.get("list", "configmaps") - lists_before
        gone_served = 10_000 - sb.faults.gone_next.get("configmaps", 0)
        await items.aclose()
        delays = [entry["retry_in"] for entry in logs if entry["event"] == "watch expired; relisting"]
        assert delays[:6] == [0.0, 0.05, 0.1, 0.2, 0.4, 0.4], "each relist waits longer than the one before"
        assert lists == relisted == watcher.relists, "one LIST per 410, no more"
        assert gone_served <= relisted + 1, "each 410 waited for its backoff before the next watch"
