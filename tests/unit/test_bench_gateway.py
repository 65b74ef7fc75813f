"""hack/bench_gateway.py: the stand-in Gateway accepts each HTTPRoute generation once, asks the sandbox only for
HTTPRoute changes, and accepts what it missed when its change stream ended."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HACK = Path(__file__).resolve().parents[2] / "hack"
sys.path.insert(0, str(HACK))

from bench_gateway import GATEWAY_GROUP, InstantGateway  # noqa: E402


def route(name: str, generation: int, accepted: int = 0) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": "bench", "generation": generation},
                           "spec": {"parentRefs": [{"name": "public-gateway", "namespace": "gateway"}]}}
    if accepted:
        obj["status"] = {"parents": [{"conditions": [{"type": "Accepted", "observedGeneration": accepted}]}]}
    return obj


@dataclass
class Change:
    type: str
    group: str
    plural: str
    object: dict[str, Any]


class FakeCluster:
    """Routes in a dict; each ``changes()`` stream yields its scripted changes, then ends (as on overflow)."""

    def __init__(self, routes: list[dict[str, Any]], streams: list[list[Change]],
                 lost: list[dict[str, Any]] | None = None) -> None:
        self.routes = {r["metadata"]["name"]: r for r in routes}
        self.streams = streams
        self.lost = lost or []  # written while the first stream was ending: never delivered as a change
        self.asked: list[Any] = []
        self.patched: list[tuple[str, int]] = []
        self.done = asyncio.Event()

    async def changes(self, resources: Any = None) -> AsyncIterator[Change]:
        self.asked.append(resources)
        if not self.streams:
            self.done.set()
            await asyncio.Event().wait()
        for change in self.streams.pop(0):
            yield change
        for obj in self.lost:
            self.routes[obj["metadata"]["name"]] = obj
        self.lost = []

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(self.routes.values())

    async def patch_status(self, group: str, plural: str, namespace: str | None, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        generation = status["parents"][0]["conditions"][0]["observedGeneration"]
        self.patched.append((name, generation))
        self.routes[name] = {**self.routes[name], "status": status}
        return self.routes[name]


async def run_gateway(cluster: FakeCluster) -> InstantGateway:
    gateway = InstantGateway()
    task = asyncio.create_task(gateway.run(cluster))
    await asyncio.wait_for(cluster.done.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return gateway


async def test_each_new_generation_is_accepted_once_and_only_routes_are_asked_for() -> None:
    changes = [Change("ADDED", GATEWAY_GROUP, "httproutes", route("a", 1)),
               Change("MODIFIED", GATEWAY_GROUP, "httproutes", route("a", 1, accepted=1)),
               Change("MODIFIED", GATEWAY_GROUP, "httproutes", route("a", 2, accepted=1)),
               Change("DELETED", GATEWAY_GROUP, "httproutes", route("a", 2))]
    cluster = FakeCluster([], [changes])
    await run_gateway(cluster)
    assert cluster.patched == [("a", 1), ("a", 2)]
    assert cluster.asked[0] == [(GATEWAY_GROUP, "httproutes")]


async def test_after_its_stream_ends_it_resubscribes_and_accepts_what_it_missed() -> None:
    cluster = FakeCluster([route("seen", 1, accepted=1)], [[]], lost=[route("missed", 3, accepted=2)])
    gateway = await run_gateway(cluster)
    assert gateway.resubscriptions == 1
    assert cluster.patched == [("missed", 3)]
