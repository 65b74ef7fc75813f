"""The informers the engine reads from, the caches over them, and the kinds a cluster may not serve.

The fixed informers (Canaries, workloads, Services, HTTPRoutes, HPAs, templates, configs) are built up front.
Optional kinds are watched only where the cluster serves them: GRPCRoutes and KEDA's ScaledObjects when their CRD
exists at start (ScaledObjects are looked for again when a canary needs them, so KEDA installed later needs no
restart), and v1beta1 HTTPRoutes once a canary first asks for that version. The controller only says how each
informer's events reach its handlers (``wire``); everything about starting, syncing and stopping them is here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flaggerpy.canary.cache import Caches
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.errors import Forbidden, NotFound
from flaggerpy.kube.informer import Informer
from flaggerpy.log import get_logger

if TYPE_CHECKING:
    from flaggerpy.canary.controller import ControllerSettings

log = get_logger(__name__)

Wire = Callable[[Informer], None]
"""Adds the controller's handlers to an informer."""


@dataclass(frozen=True)
class OptionalKind:
    """A kind watched only when the cluster serves its CRD (a watch on a kind it does not serve retries forever)."""

    resource: Resource
    crd: str
    """The CustomResourceDefinition's name, looked up to decide."""
    wire: Wire
    recheck: bool = False
    """Look for the CRD again when a canary needs the kind (at most every ``optional_kind_recheck`` seconds)."""
    on_watched: Wire | None = None
    """Called once an informer started after the others has synced (the canaries waiting for the kind)."""


class InformerRegistry:
    """The process's informers by resource, their caches, and the optional kinds' discovery."""

    def __init__(
        self,
        kube: KubeClient,
        settings: ControllerSettings,
        informers: dict[Resource, Informer],
        *,
        optional: Sequence[OptionalKind] = (),
        lazy: Mapping[Resource, Wire] | None = None,
        observe: Wire | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self.informers = informers
        self.caches = Caches({resource: inf.store for resource, inf in informers.items()},
                             on_unwatched=self._look_again)
        self._optional = {kind.resource: kind for kind in optional}
        self._lazy = dict(lazy or {})
        self._observe = observe
        # When each optional kind's CRD was last looked for, and the looks under way.
        self._looked_at: dict[Resource, float] = {}
        self._looks: set[asyncio.Task[None]] = set()

    def cached(self, resource: Resource) -> Callable[[str, str], Mapping[str, Any] | None]:
        """A lookup ``(namespace, name) -> object`` in ``resource``'s cache; None while it is not watched (or, for a
        kind watched on first use, until its informer has synced: the caller reads the API server meanwhile)."""
        if resource in self._lazy:
            return lambda namespace, name: self._cached_lazy(resource, namespace, name)

        def lookup(namespace: str, name: str) -> Mapping[str, Any] | None:
            informer = self.informers.get(resource)
            return None if informer is None else informer.store.get_by_name(namespace, name)

        return lookup

    def _cached_lazy(self, resource: Resource, namespace: str, name: str) -> Mapping[str, Any] | None:
        informer = self.informers.get(resource)
        if informer is None:
            informer = self._informer(resource, self._lazy[resource])
            self.caches.add(resource, informer.store)
            informer.start()
            return None
        return informer.store.get_by_name(namespace, name) if informer.has_synced else None

    def _informer(self, resource: Resource, wire: Wire) -> Informer:
        informer = Informer(self._kube, resource, self._settings.namespace, settings=self._settings.watch)
        wire(informer)
        if self._observe is not None:
            self._observe(informer)
        self.informers[resource] = informer
        return informer

    async def _optional_informer(self, kind: OptionalKind) -> Informer | None:
        """An informer (not started) on ``kind`` when the cluster serves its CRD; None when it does not, or when
        it is watched already."""
        if kind.resource in self.informers:
            return None
        self._looked_at[kind.resource] = time.monotonic()
        try:
            await self._kube.get(res.CRDS, kind.crd)
        except (NotFound, Forbidden) as exc:
            log.info("not watching an optional kind", resource=str(kind.resource), reason=exc.__class__.__name__)
            return None
        return self._informer(kind.resource, kind.wire)

    def _look_again(self, resource: Resource) -> None:
        """A canary needs ``resource``, which is not watched: look for its CRD again (at most every
        ``optional_kind_recheck`` seconds, in the background) and start watching once it is served."""
        kind = self._optional.get(resource)
        if kind is None or not kind.recheck or self._looks:
            return
        last = self._looked_at.get(resource)
        if last is not None and time.monotonic() - last < self._settings.optional_kind_recheck:
            return
        task = asyncio.get_running_loop().create_task(self._start_late(kind))
        self._looks.add(task)
        task.add_done_callback(self._looks.discard)

    async def _start_late(self, kind: OptionalKind) -> None:
        try:
            informer = await self._optional_informer(kind)
        except Exception as exc:  # an unreachable API server now is retried at the next look
            log.warning("could not look for an optional kind's CRD", resource=str(kind.resource), error=str(exc))
            return
        if informer is None:
            return
        log.info("watching an optional kind that is served now", resource=str(kind.resource))
        informer.start()
        # Canaries read the cache only once it is full: an empty one would tell them their object is missing.
        await informer.wait_for_sync(self._settings.sync_timeout)
        self.caches.add(kind.resource, informer.store)
        if kind.on_watched is not None:
            kind.on_watched(informer)

    async def start(self, standby: bool = False) -> None:
        """Start every informer (the optional kinds the cluster serves included) and wait, bounded, until their
        caches are filled; ``standby`` keeps the handlers paused (see :meth:`resume_handlers`)."""
        # Optional kinds, read by canaries as soon as they are watched: no canary runs before the sync below.
        for kind in self._optional.values():
            optional = await self._optional_informer(kind)
            if optional is not None:
                self.caches.add(kind.resource, optional.store)
        for informer in self.informers.values():
            if standby:
                informer.pause_handlers()
            informer.start()
        results = await asyncio.gather(
            *(inf.wait_for_sync(self._settings.sync_timeout) for inf in self.informers.values())
        )
        for resource, synced in zip(self.informers, results, strict=True):
            if not synced:
                log.warning("cache not synced; is the CRD installed?", resource=str(resource))

    async def resume_handlers(self) -> None:
        """Call the handlers again after a standby start: every cached object is replayed as added."""
        for informer in list(self.informers.values()):
            await informer.resume_handlers()

    def dead(self) -> list[str]:
        """The informers that ended or keep crashing."""
        return [f"informer {resource} is not running" for resource, informer in self.informers.items()
                if not informer.alive]

    async def stop(self) -> None:
        """Stop the looks for optional kinds and every informer."""
        await asyncio.gather(*self._looks, return_exceptions=True)
        await asyncio.gather(*(inf.stop() for inf in self.informers.values()))
