"""The raw watch against the sandbox: bookmarks keep a quiet watch's version fresh so a resume needs no relist."""

from __future__ import annotations

import asyncio

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.resources import CONFIGMAPS, NAMESPACES
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import Bookmark, Listed, StreamItem, Watcher, WatchEvent
from flaggerpy.sandbox import Sandbox

FAST = WatchSettings(server_timeout=30, backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.01)


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
