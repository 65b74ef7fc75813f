"""Raw list+watch streams as one async generator.

The generator lists, yields the listed objects as ADDED events and a :class:`Listed` marker, then watches from the
list's resourceVersion. It takes the resourceVersion from every event (BOOKMARKs included), resumes a dropped stream
from the last version it saw, and on 410 Gone (at connect time or as an in-stream ERROR) relists and yields only the
DIFFERENCE against what it already delivered, so a consumer never loses or repeats a change.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from flaggerpy.kube import jsonio
from flaggerpy.kube.api import KubeClient, Obj, Resource
from flaggerpy.kube.errors import ApiError, Gone
from flaggerpy.kube.ratelimit import Backoff
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.versions import is_newer
from flaggerpy.log import get_logger

log = get_logger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ReconnectReason = Literal["dropped", "gone", "error"]
ReconnectObserver = Callable[[ReconnectReason], None]
"""Told why a watch is re-opened: ``gone`` (410, relist), ``dropped`` (the connection broke or the server hung up
early) or ``error`` (the server refused the watch or sent an ERROR event)."""


@dataclass(frozen=True)
class WatchEvent:
    """A change of one object. After a relist, DELETED carries the last object the consumer was given."""

    type: EventType
    object: Obj


@dataclass(frozen=True)
class Listed:
    """In-band marker: the (re)list is fully delivered; the consumer's view now equals the server's at this version."""

    resource_version: str
    relist: bool


@dataclass(frozen=True)
class Bookmark:
    """In-band marker: the server says everything up to ``resource_version`` was delivered."""

    resource_version: str


StreamItem = WatchEvent | Listed | Bookmark


def object_key(obj: Mapping[str, Any]) -> str:
    """The cache key of an object: ``namespace/name``, or ``name`` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))


def resource_version(obj: Mapping[str, Any]) -> str:
    """``metadata.resourceVersion`` or ""."""
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


class _StreamBroken(Exception):
    """The stream failed in a way that calls for a backoff before resuming from the last version."""

    def __init__(self, message: str, reason: ReconnectReason = "dropped") -> None:
        super().__init__(message)
        self.reason: ReconnectReason = reason


Transform = Callable[[Obj], Obj]
"""Reduces an object to what the cache needs (e.g. a Secret to its metadata and a digest of its data)."""


class Watcher:
    """State of one list+watch: what the consumer was given and the version to resume from."""

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        settings: WatchSettings | None = None,
        on_reconnect: ReconnectObserver | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.kube = kube
        self.transform = transform
        """Applied to every object as it arrives, before anything keeps it (client-go's SetTransform)."""
        self.on_reconnect = on_reconnect
        # Told each time a watch stream opens: the server answers again (a CLI clears its "connection lost").
        self.on_connected: Callable[[], None] | None = None
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.settings = settings or WatchSettings()
        self.resource_version = ""
        self.known: dict[str, Obj] = {}
        self.relists = 0
        # What the current stream asked the server for: it ends the stream cleanly then.
        self._server_timeout = 0

    async def _relist(self) -> list[StreamItem]:
        items, version = await self.kube.list(self.resource, self.namespace, self.label_selector, self.field_selector)
        relist = bool(self.resource_version)
        if self.transform is not None:
            items = [self.transform(o) for o in items]
        fresh = {object_key(o): o for o in items}
        out: list[StreamItem] = []
        for key, gone in self.known.items():
            if key not in fresh:
                out.append(WatchEvent("DELETED", gone))
        for key, obj in fresh.items():
            old = self.known.get(key)
            if old is None:
                out.append(WatchEvent("ADDED", obj))
            elif _uid(old) != _uid(obj):
                # Deleted and recreated while we were not watching: a different object under the same name.
                out.append(WatchEvent("DELETED", old))
                out.append(WatchEvent("ADDED", obj))
            elif is_newer(resource_version(obj), resource_version(old)):
                out.append(WatchEvent("MODIFIED", obj))
        self.known = fresh
        self.resource_version = version
        if relist:
            self.relists += 1
        out.append(Listed(version, relist))
        return out

    def _apply(self, kind: str, obj: Obj, version: str) -> WatchEvent | None:
        """Fold one watch event into ``known``; None when it changes nothing the consumer has not seen."""
        key = object_key(obj)
        old = self.known.get(key)
        if kind == "DELETED":
            if old is None:
                return None
            del self.known[key]
            return WatchEvent("DELETED", obj)
        if old is not None and not is_newer(version, resource_version(old)):
            return None
        self.known[key] = obj
        return WatchEvent("ADDED" if old is None else "MODIFIED", obj)

    def _params(self, server_timeout: int) -> dict[str, Any]:
        return {
            "watch": True,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": self.settings.allow_bookmarks,
            "timeoutSeconds": server_timeout,
            "labelSelector": self.label_selector,
            "fieldSelector": self.field_selector,
        }

    async def _stream(self) -> AsyncIterator[StreamItem]:
        """One watch connection. Returns on a clean end; raises Gone to relist, _StreamBroken to back off.

        Nothing received for the (jittered) idle timeout means a hung connection: the read times out and the stream
        is re-opened. The server is asked to end the stream a little earlier, so a healthy quiet one ends cleanly.
        """
        settings = self.settings
        idle = settings.idle_timeout + settings.idle_timeout_jitter * random.random()
        self._server_timeout = max(1, int(idle - settings.server_timeout_margin))
        try:
            async with self.kube.stream(self.resource, self.namespace, self._params(self._server_timeout),
                                        idle) as body:
                if self.on_connected is not None:
                    self.on_connected()
                # Whole chunks are split into lines here: one read per network chunk instead of one per event,
                # and a line is only copied when it spans two chunks.
                partial: list[bytes] = []
                async for chunk in body.iter_any():
                    if b"\n" not in chunk:
                        partial.append(chunk)
                        continue
                    lines = chunk.split(b"\n")
                    if partial:
                        partial.append(lines[0])
                        lines[0] = b"".join(partial)
                    rest = lines.pop()
                    partial = [rest] if rest else []
                    for line in lines:
                        item = self._decode(line)
                        if item is not None:
                            yield item
                if partial:
                    item = self._decode(b"".join(partial))
                    if item is not None:
                        yield item
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _StreamBroken(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # an undecodable line: the server (or a proxy) is misbehaving
            raise _StreamBroken(f"{type(exc).__name__}: {exc}", "error") from exc

    def _decode(self, line: bytes) -> StreamItem | None:
        if not line.strip():
            return None
        try:
            event = jsonio.loads(line)
        except jsonio.Undecodable:
            # One hostile object (nested too deeply) must not stop the stream: it is skipped, counted, and the
            # next event or bookmark moves the version on.
            self.kube.report_undecodable(str(self.resource))
            return None
        if not isinstance(event, dict):
            raise ValueError(f"watch event is not a JSON object: {line[:80]!r}")
        kind = event.get("type")
        obj = event.get("object") or {}
        if not isinstance(obj, dict):
            raise ValueError(f"watch event object is not a JSON object: {line[:80]!r}")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(410, reason=str(obj.get("reason", "Expired")), message=str(obj.get("message", "")))
            raise _StreamBroken(f"watch ERROR event: {obj.get('code')} {obj.get('message', '')}", "error")
        version = resource_version(obj)
        if version:
            self.resource_version = version
        if kind == "BOOKMARK":
            return Bookmark(version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            return self._apply(kind, obj if self.transform is None else self.transform(obj), version)
        raise _StreamBroken(f"unknown watch event type {kind!r}", "error")

    def _reconnecting(self, reason: ReconnectReason) -> None:
        if self.on_reconnect is None:
            return
        try:
            self.on_reconnect(reason)
        except Exception:  # an observer must not stop the cache from following the server
            log.exception("watch reconnect observer failed", resource=str(self.resource))

    async def events(self) -> AsyncGenerator[StreamItem, None]:
        """List, then watch forever (until the consumer stops iterating or the task is cancelled)."""
        settings = self.settings
        backoff = Backoff(settings.backoff_initial, settings.backoff_max, settings.backoff_jitter,
                          settings.backoff_reset_after)
        # A server that answers 410 again and again (the reflector's case) gets relists further and further apart.
        relist_backoff = Backoff(settings.backoff_initial, settings.backoff_max, settings.backoff_jitter,
                                 settings.backoff_reset_after, immediate_first=True)
        need_list = True
        while True:
            started = time.monotonic()
            try:
                if need_list:
                    for item in await self._relist():
                        yield item
                    need_list = False
                async for item in self._stream():
                    yield item
                lasted = time.monotonic() - started
                if lasted >= settings.backoff_reset_after:
                    backoff.reset()
                if lasted >= self._server_timeout:
                    continue
                # The server hung up before the timeout it promised: a drop, so back off like any failure.
                raise _StreamBroken(f"stream closed by the server after {lasted:.3f}s")
            except Gone as exc:
                delay = relist_backoff.next_delay()
                log.info("watch expired; relisting", resource=str(self.resource), rv=self.resource_version,
                         retry_in=round(delay, 3), error=str(exc))
                need_list = True
                self._reconnecting("gone")
                if delay > 0:
                    await asyncio.sleep(delay)
                continue
            except (ApiError, _StreamBroken) as exc:
                if time.monotonic() - started >= settings.backoff_reset_after:
                    backoff.reset()
                delay = backoff.next_delay()
                # 4xx other than throttling will not heal by itself (RBAC, missing CRD): say so louder.
                persistent = isinstance(exc, ApiError) and 400 <= exc.status < 500 and exc.status != 429
                (log.warning if persistent else log.info)(
                    "watch interrupted; resuming",
                    resource=str(self.resource),
                    rv=self.resource_version,
                    relist=need_list,
                    retry_in=round(delay, 3),
                    error=str(exc),
                )
                self._reconnecting(exc.reason if isinstance(exc, _StreamBroken) else "error")
                await asyncio.sleep(delay)


def watch_objects(
    kube: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    settings: WatchSettings | None = None,
) -> AsyncIterator[StreamItem]:
    """List+watch ``resource`` forever, yielding WatchEvents and Listed/Bookmark markers (see module docs)."""
    return Watcher(kube, resource, namespace, label_selector, field_selector, settings).events()
