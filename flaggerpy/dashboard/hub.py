"""Fan-out of cache changes to every open page, in memory.

A change marks the canaries it concerns; a flush (at once, then at most every ``flush_interval`` seconds) computes
each changed list row and each watched canary page once, encodes it once as a Server-Sent Event, and hands the same
bytes to every subscriber (nothing when the result did not change). So a thousand tabs cost one computation per
change and no API request at all. A subscriber that cannot keep up (its queue is full) is dropped; its browser
reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flaggerpy.ctl.view import parse_canary
from flaggerpy.dashboard import views
from flaggerpy.dashboard.caches import Caches, involved_canary
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import Obj, Resource
from flaggerpy.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class HubSettings:
    """Tunables of the fan-out; tests and the benchmark shorten them."""

    flush_interval: float = 0.1
    """Least seconds between two flushes: changes arriving meanwhile (a release step writes several objects at
    once) are gathered and sent together."""
    queue_size: int = 256
    """Messages a subscriber may have unread before it is dropped (the browser then reconnects)."""


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Subscriber:
    """One open stream: a bounded queue of encoded events; None in it means "drop me"."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, message: bytes) -> None:
        """Queue ``message``; a full queue drops the subscriber instead of growing without bound."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class Hub:
    """Keeps the list rows current and pushes changes to list and canary-page subscribers."""

    def __init__(self, caches: Caches, settings: HubSettings | None = None) -> None:
        self.caches = caches
        self.settings = settings or HubSettings()
        self._rows: dict[str, dict[str, Any]] = {}
        self._snapshot: bytes | None = None
        self._list_subs: set[Subscriber] = set()
        self._page_subs: dict[str, set[Subscriber]] = {}
        self._pages: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._dirty_pages: set[str] = set()
        self._wake = asyncio.Event()
        self.flushes = 0
        caches.on_change(self.changed)
        caches.on_health(self.health_changed)

    # -- changes --------------------------------------------------------------------------------------------

    def changed(self, resource: Resource, obj: Obj) -> None:
        """Mark the canaries a changed object concerns."""
        if resource == res.CANARIES:
            self._dirty.add(_key(obj))
        elif resource == res.EVENTS:
            self._dirty.update(involved_canary(obj))
        else:
            # Routes and workloads are shown only on canary pages: recompute the open pages of that namespace
            # (a list row does not depend on them, so a busy Deployment costs the list nothing).
            prefix = f"{(obj.get('metadata') or {}).get('namespace') or ''}/"
            self._dirty_pages.update(k for k in self._page_subs if k.startswith(prefix))
        self._wake.set()

    def health_changed(self) -> None:
        """Tell every page at once which watches are not following the cluster (rare: not batched)."""
        message = sse("health", self.caches.health())
        self._snapshot = None
        self._pages.clear()
        for sub in [*self._list_subs, *(s for subs in self._page_subs.values() for s in subs)]:
            sub.offer(message)

    def rebuild(self) -> None:
        """Compute every row from the caches (after the first list)."""
        self._rows = {_key(obj): self._row(obj) for obj in self.caches.canaries()}
        self._snapshot = None

    async def run(self) -> None:
        """Flush changes until cancelled: a change after a quiet spell at once, then at most one flush per
        ``flush_interval`` (what arrives meanwhile is gathered into the next)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bad object must not stop every page from updating
                log.exception("dashboard flush failed")
            await asyncio.sleep(self.settings.flush_interval)

    def flush(self) -> None:
        """Send what changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        pages, self._dirty_pages = self._dirty_pages | dirty, set()
        if not pages:
            return
        self.flushes += 1
        upserts: list[dict[str, Any]] = []
        removed: list[str] = []
        for key in sorted(dirty):
            namespace, _, name = key.partition("/")
            obj = self.caches.canary(namespace, name)
            if obj is None:
                if self._rows.pop(key, None) is not None:
                    removed.append(key)
            else:
                row = self._row(obj)
                if self._rows.get(key) != row:
                    self._rows[key] = row
                    upserts.append(row)
        for key in sorted(pages):
            namespace, _, name = key.partition("/")
            if key in self._page_subs:
                page = self._page(namespace, name)
                if page != self._pages.get(key):
                    self._pages[key] = page
                    for sub in self._page_subs[key]:
                        sub.offer(page)
        if upserts or removed:
            self._snapshot = None
            message = sse("patch", {"upsert": upserts, "remove": removed})
            for sub in self._list_subs:
                sub.offer(message)

    # -- subscriptions --------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole list as one event (encoded once until the next change)."""
        if self._snapshot is None:
            rows = sorted(self._rows.values(), key=lambda r: r["key"])
            self._snapshot = sse("snapshot", {"rows": rows, "scope": self.caches.scope.describe(),
                                              "health": self.caches.health()})
        return self._snapshot

    @contextlib.contextmanager
    def list_subscription(self) -> Iterator[Subscriber]:
        """A subscriber to list changes, its first message the snapshot."""
        sub = Subscriber(self.settings.queue_size)
        sub.offer(self.snapshot())
        self._list_subs.add(sub)
        try:
            yield sub
        finally:
            self._list_subs.discard(sub)

    @contextlib.contextmanager
    def page_subscription(self, namespace: str, name: str) -> Iterator[Subscriber]:
        """A subscriber to one canary's page, its first message the page as it is now."""
        key = f"{namespace}/{name}"
        sub = Subscriber(self.settings.queue_size)
        subs = self._page_subs.setdefault(key, set())
        if not subs or key not in self._pages:
            self._pages[key] = self._page(namespace, name)
        sub.offer(self._pages[key])
        subs.add(sub)
        try:
            yield sub
        finally:
            subs.discard(sub)
            if not subs:
                del self._page_subs[key]
                self._pages.pop(key, None)

    @property
    def subscribers(self) -> int:
        """Open streams (list and pages)."""
        return len(self._list_subs) + sum(len(s) for s in self._page_subs.values())

    # -- views ----------------------------------------------------------------------------------------------

    def _row(self, obj: Obj) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        return views.list_row(obj, self.caches.events_of(str(meta.get("namespace")), str(meta.get("name"))))

    def _page(self, namespace: str, name: str) -> bytes:
        obj = self.caches.canary(namespace, name)
        if obj is None:
            return sse("gone", {"key": f"{namespace}/{name}"})
        canary = parse_canary(obj)
        target = (obj.get("spec") or {}).get("targetRef") or {}
        target_name = str(target.get("name") or name)
        route_name = canary.apex_name if canary is not None else target_name
        page = views.detail(
            obj, self.caches.events_of(namespace, name),
            self.caches.get(res.HTTPROUTES_V1, namespace, route_name),
            self.caches.get(res.DEPLOYMENTS, namespace, f"{target_name}-primary"),
            self.caches.get(res.DEPLOYMENTS, namespace, target_name),
            canary=canary,
        )
        page["scope"] = self.caches.scope.describe()
        page["health"] = self.caches.health()
        return sse("page", page)

