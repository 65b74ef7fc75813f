"""One informer set per dashboard process: Canaries, their Events, HTTPRoutes and Deployments, in the user's scope.

Every browser tab reads these caches; none of them costs the API server a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from flaggerpy.dashboard.access import FIELD_SELECTORS, Scope
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj, Resource
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.settings import WatchSettings

CANARY_INDEX = "canary"

Changed = Callable[[Resource, Obj], None]
_REASONS = {"error": "the API server refused the watch (allowed to watch?), retrying",
            "dropped": "the connection broke, reconnecting", "gone": "relisting after 410 Gone"}


def involved_canary(event: Obj) -> list[str]:
    """Index value: ``namespace/name`` of the Canary an Event is about (none for other Events)."""
    involved = event.get("involvedObject") or {}
    if involved.get("kind") != "Canary":
        return []
    namespace = involved.get("namespace") or (event.get("metadata") or {}).get("namespace")
    return [f"{namespace}/{involved.get('name')}"]


def _written_order(obj: Obj) -> int:
    version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(version) if version.isdigit() else 0


class Caches:
    """The informers of a :class:`Scope`, read as one cache per resource type."""

    def __init__(self, kube: KubeClient, scope: Scope, watch: WatchSettings | None = None) -> None:
        self.scope = scope
        self._troubled: dict[tuple[str, str], str] = {}
        self._informers: dict[Resource, list[Informer]] = {}
        for resource, namespaces in scope.namespaces.items():
            indexers: dict[str, Any] = {CANARY_INDEX: involved_canary} if resource == res.EVENTS else {}
            self._informers[resource] = [
                Informer(kube, resource, ns, field_selector=FIELD_SELECTORS.get(resource), settings=watch,
                         indexers=indexers)
                for ns in namespaces
            ]

    def on_health(self, changed: Callable[[], None]) -> None:
        """Follow every watch: ``changed()`` after one fails (its informer retries) and after one is open again,
        so pages can say their data has stopped following the cluster instead of showing it as live."""
        for resource, informers in self._informers.items():
            for informer, namespace in zip(informers, self.scope.namespaces[resource], strict=True):
                where = (resource.plural, namespace or "")

                def failed(_: str, reason: str, where: tuple[str, str] = where) -> None:
                    if self._troubled.get(where) != reason:
                        self._troubled[where] = reason
                        changed()

                def connected(where: tuple[str, str] = where) -> None:
                    if self._troubled.pop(where, None) is not None:
                        changed()

                informer.observe_reconnects(failed)
                informer.observe_connected(connected)

    def health(self) -> dict[str, str]:
        """``plural`` -> why its watch is not following the cluster now (in which namespaces), for the page."""
        out: dict[str, list[str]] = {}
        for (plural, namespace), reason in sorted(self._troubled.items()):
            out.setdefault(plural, []).append(f"{namespace or 'all namespaces'}: {_REASONS.get(reason, reason)}")
        return {plural: "; ".join(parts) for plural, parts in out.items()}

    def on_change(self, changed: Changed) -> None:
        """Call ``changed(resource, object)`` after every add, update and delete (the cache already has it)."""
        for resource, informers in self._informers.items():
            def add(obj: Obj, resource: Resource = resource) -> None:
                changed(resource, obj)

            def update(old: Obj, new: Obj, resource: Resource = resource) -> None:
                changed(resource, new)

            for informer in informers:
                informer.add_handlers(add, update, add)

    async def start(self, timeout: float) -> list[str]:  # noqa: ASYNC109 (a deadline for the first list)
        """Start every informer; the resources (``plural`` in ``namespace``) not listed within ``timeout`` seconds."""
        informers = [(resource, i) for resource, group in self._informers.items() for i in group]
        for _, informer in informers:
            informer.start()
        results = await asyncio.gather(*(i.wait_for_sync(timeout) for _, i in informers))
        return sorted({resource.plural for (resource, _), synced in zip(informers, results, strict=True)
                       if not synced})

    async def stop(self) -> None:
        """Stop every informer."""
        await asyncio.gather(*(i.stop() for group in self._informers.values() for i in group))

    def canaries(self) -> list[Obj]:
        """Every cached Canary."""
        return [obj for informer in self._informers.get(res.CANARIES, []) for obj in informer.store.objects()]

    def canary(self, namespace: str, name: str) -> Obj | None:
        """The cached Canary ``namespace/name``."""
        return self.get(res.CANARIES, namespace, name)

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        """A cached object of a watched resource, None when absent or outside the scope."""
        for informer in self._informers.get(resource, []):
            found = informer.store.get_by_name(namespace, name)
            if found is not None:
                return found
        return None

    def events_of(self, namespace: str, name: str) -> list[Obj]:
        """The cached Events about the Canary ``namespace/name``."""
        key = f"{namespace}/{name}"
        informers = self._informers.get(res.EVENTS, [])
        found = [e for informer in informers for e in informer.store.by_index(CANARY_INDEX, key)]
        # Event times have one-second resolution; the resourceVersion keeps the order of a second's Events.
        found.sort(key=_written_order)
        return found

    def canaries_in(self, namespace: str) -> list[Obj]:
        """The cached Canaries of ``namespace``."""
        informers = self._informers.get(res.CANARIES, [])
        return [obj for informer in informers for obj in informer.store.by_namespace(namespace)]
