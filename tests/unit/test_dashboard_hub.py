"""The dashboard's fan-out: one computation per change for every page, and a page that cannot keep up is dropped
(its browser reconnects to a fresh snapshot) instead of growing the server's memory."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flaggerpy.dashboard.access import Scope
from flaggerpy.dashboard.caches import Caches
from flaggerpy.dashboard.hub import Hub, HubSettings, Subscriber
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import Obj, Resource


class FakeCaches(Caches):
    """The caches' read side over a dict, without informers."""

    def __init__(self) -> None:
        self.scope = Scope(namespaces={res.CANARIES: [None]})
        self.objects: dict[str, Obj] = {}
        self.changed: Any = None

    def on_change(self, changed: Any) -> None:
        self.changed = changed

    def on_health(self, changed: Any) -> None:
        self.health_changed = changed

    def health(self) -> dict[str, str]:
        return {}

    def canaries(self) -> list[Obj]:
        return list(self.objects.values())

    def canary(self, namespace: str, name: str) -> Obj | None:
        return self.objects.get(f"{namespace}/{name}")

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        return None

    def events_of(self, namespace: str, name: str) -> list[Obj]:
        return []

    def canaries_in(self, namespace: str) -> list[Obj]:
        return [o for k, o in self.objects.items() if k.startswith(f"{namespace}/")]


def _canary(name: str, weight: int) -> Obj:
    return {"metadata": {"namespace": "test", "name": name},
            "spec": {"targetRef": {"name": name}}, "status": {"phase": "Progressing", "canaryWeight": weight}}


def _decode(message: bytes | None) -> tuple[str, Any]:
    assert message is not None
    head, data = message.decode().strip().split("\n")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def test_a_change_is_computed_once_and_sent_to_every_list_page_and_only_its_canary_page() -> None:
    caches = FakeCaches()
    caches.objects = {"test/a": _canary("a", 0), "test/b": _canary("b", 0)}
    hub = Hub(caches, HubSettings())
    hub.rebuild()
    with hub.list_subscription() as one, hub.list_subscription() as two, \
            hub.page_subscription("test", "a") as page_a, hub.page_subscription("test", "b") as page_b:
        for sub in (one, two, page_a, page_b):
            sub.queue.get_nowait()  # the snapshot / the page as it was
        caches.objects["test/a"] = _canary("a", 20)
        caches.changed(res.CANARIES, caches.objects["test/a"])
        hub.flush()
        first, second = one.queue.get_nowait(), two.queue.get_nowait()
        assert first is second  # the same bytes object: encoded once
        name, patch = _decode(first)
        assert name == "patch" and [r["weight"] for r in patch["upsert"]] == [20] and patch["remove"] == []
        assert _decode(page_a.queue.get_nowait())[1]["row"]["weight"] == 20
        assert page_b.queue.empty()
        # A change that alters nothing shown sends nothing.
        caches.changed(res.CANARIES, caches.objects["test/a"])
        hub.flush()
        assert one.queue.empty() and page_a.queue.empty()
        del caches.objects["test/b"]
        caches.changed(res.CANARIES, _canary("b", 0))
        hub.flush()
        assert _decode(one.queue.get_nowait())[1]["remove"] == ["test/b"]
        assert _decode(page_b.queue.get_nowait())[0] == "gone"
    assert hub.subscribers == 0


def test_a_subscriber_that_cannot_keep_up_is_dropped_not_buffered() -> None:
    sub = Subscriber(3)
    for n in range(10):
        sub.offer(f"{n}".encode())
    assert sub.dropped
    received = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert received[-1] is None and len(received) == 3


async def test_changes_arriving_together_are_flushed_together() -> None:
    caches = FakeCaches()
    caches.objects = {f"test/c{i}": _canary(f"c{i}", 0) for i in range(5)}
    hub = Hub(caches, HubSettings(flush_interval=0.05))
    hub.rebuild()
    runner = asyncio.create_task(hub.run())
    try:
        with hub.list_subscription() as sub:
            sub.queue.get_nowait()
            for i in range(5):
                caches.objects[f"test/c{i}"] = _canary(f"c{i}", 10)
                caches.changed(res.CANARIES, caches.objects[f"test/c{i}"])
            name, patch = _decode(await asyncio.wait_for(sub.queue.get(), 5))
            assert name == "patch" and len(patch["upsert"]) == 5
            assert hub.flushes == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
