"""Informer over the sandbox: churn on 1,000 objects while watches are dropped and forced to 410 Gone."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.resources import CONFIGMAPS, NAMESPACES
from flaggerpy.kube.settings import ClientSettings, WatchSettings
from flaggerpy.kube.versions import is_newer
from flaggerpy.kube.watch import object_key, resource_version
from flaggerpy.sandbox import Sandbox

NS = "churn"
OBJECTS = 1000
BATCH = 50
FAST_WATCH = WatchSettings(idle_timeout=35, idle_timeout_jitter=0,
                           backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.01)
FAST_CLIENT = ClientSettings(backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.0)


def configmap(i: int, generation: int = 0) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:04d}", "namespace": NS},
        "data": {"generation": str(generation)},
    }


class Recorder:
    """Remembers the last thing handlers said about each key, and any out-of-order update."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, Obj]] = {}
        self.stale_updates: list[tuple[str, str, str]] = []

    def add(self, obj: Obj) -> None:
        self.last[object_key(obj)] = ("add", obj)

    def update(self, old: Obj, new: Obj) -> None:
        if not is_newer(resource_version(new), resource_version(old)):
            self.stale_updates.append((object_key(new), resource_version(old), resource_version(new)))
        self.last[object_key(new)] = ("update", new)

    def delete(self, obj: Obj) -> None:
        self.last[object_key(obj)] = ("delete", obj)


async def converge(informer: Informer, kube: KubeClient) -> dict[str, str]:
    """The server's final state, once the informer's cache caught up with it (bounded wait)."""
    items, _ = await kube.list(CONFIGMAPS, NS)
    server = {object_key(o): resource_version(o) for o in items}
    for _ in range(400):
        cached = {object_key(o): resource_version(o) for o in informer.store.objects()}
        if cached == server:
            break
        await asyncio.sleep(0.025)
    return server


async def churn(kube: KubeClient, sb: Sandbox, rng: random.Random) -> None:
    """Create all, update most twice, delete a third, with watch drops and forced 410s between batches."""

    async def run(ops: list[Any]) -> None:
        for start in range(0, len(ops), BATCH):
            await asyncio.gather(*ops[start : start + BATCH])
            roll = rng.random()
            if roll < 0.25:
                sb.faults.drop_watches()
            elif roll < 0.4:
                sb.faults.force_gone("configmaps")
                sb.faults.drop_watches()

    await run([kube.create(CONFIGMAPS, configmap(i)) for i in range(OBJECTS)])
    updated = rng.sample(range(OBJECTS), OBJECTS * 3 // 4)
    for generation in (1, 2):
        await run([kube.replace(CONFIGMAPS, configmap(i, generation)) for i in updated])
    await run([kube.delete(CONFIGMAPS, f"cm-{i:04d}", NS) for i in rng.sample(range(OBJECTS), OBJECTS // 3)])


async def test_informer_cache_and_handlers_match_the_server_after_drops_and_410s() -> None:
    rng = random.Random(7)
    # A short history makes some resumes after a drop "too old" as well: natural 410s besides forced ones.
    sandbox = Sandbox(workloads=False, dataplane=False, history_size=400, bookmark_interval=0.05)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path), settings=FAST_CLIENT) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": NS}})
        seen = Recorder()
        informer = Informer(kube, CONFIGMAPS, NS, settings=FAST_WATCH)
        informer.add_handlers(seen.add, seen.update, seen.delete)
        async with informer:
            assert await informer.wait_for_sync(5)
            await churn(kube, sb, rng)
            server = await converge(informer, kube)

        cached = {object_key(o): resource_version(o) for o in informer.store.objects()}
        assert cached == server
        assert len(server) == OBJECTS - OBJECTS // 3
        assert informer.relists >= 2, "the test must actually exercise relists"
        assert seen.stale_updates == []
        for key, rv in server.items():
            what, obj = seen.last[key]
            assert what in ("add", "update") and resource_version(obj) == rv, key
        for key, (what, _) in seen.last.items():
            if key not in server:
                assert what == "delete", key
        assert len(informer.store.by_namespace(NS)) == len(server)
