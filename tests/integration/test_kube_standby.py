"""A standby's informers keep their caches current without calling handlers; resuming replays the cache to the
add handlers once, and events arriving during that replay reach the handlers after it, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.resources import CONFIGMAPS, NAMESPACES
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import object_key
from flaggerpy.sandbox import Sandbox

NS = "standby"
FAST_WATCH = WatchSettings(idle_timeout=35, idle_timeout_jitter=0,
                           backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.01)


def configmap(name: str, value: str = "0") -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"value": value}}


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 (polls a cache another task fills)
            await asyncio.sleep(0.01)


async def test_paused_handlers_stay_silent_and_resume_replays_the_cache_in_order() -> None:
    async with Sandbox(workloads=False, dataplane=False) as sb, KubeClient(str(sb.kubeconfig_path)) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": NS}})
        await kube.create(CONFIGMAPS, configmap("before"))
        calls: list[tuple[str, str]] = []
        informer = Informer(kube, CONFIGMAPS, NS, settings=FAST_WATCH)

        async def on_add(obj: Obj) -> None:
            calls.append(("add", object_key(obj)))
            if object_key(obj) == f"{NS}/before":
                # An async handler yields here: a change arriving now must wait for the replay to finish.
                await kube.replace(CONFIGMAPS, {**configmap("during", "1"), "metadata": during["metadata"]})
                await asyncio.sleep(0.2)

        informer.add_handlers(on_add, lambda old, new: calls.append(("update", object_key(new))),
                              lambda obj: calls.append(("delete", object_key(obj))))
        informer.pause_handlers()
        async with informer:
            assert await informer.wait_for_sync(5)
            during = await kube.create(CONFIGMAPS, configmap("during"))
            await kube.delete(CONFIGMAPS, "before", NS)
            again = await kube.create(CONFIGMAPS, configmap("before"))  # replayed last: its handler ends the replay
            # Two objects are cached both before the delete is seen and after the re-create: only the re-created
            # object's version says the cache has caught up (else the replay would race the delete and re-add).
            await until(lambda: (informer.store.get(f"{NS}/before") or {}).get("metadata", {}).get("resourceVersion")
                        == again["metadata"]["resourceVersion"] and len(informer.store) == 2)
            await asyncio.sleep(0.2)
            assert calls == [], "a paused informer calls no handler"
            assert informer.handlers_paused

            await informer.resume_handlers()
            assert not informer.handlers_paused
            await until(lambda: ("update", f"{NS}/during") in calls)
            assert sorted(calls[:2]) == [("add", f"{NS}/before"), ("add", f"{NS}/during")]
            assert calls[2:] == [("update", f"{NS}/during")]
            assert informer.store.get(f"{NS}/during")["data"] == {"value": "1"}  # type: ignore[index]
