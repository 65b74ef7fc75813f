"""Informers: a local cache of one resource type kept current by a list+watch, plus change handlers.

The controller reads from :class:`Store` instead of the API server; handlers only enqueue keys. The store is updated
before handlers run, so a handler that reads the cache sees the state it is told about.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flaggerpy.kube.api import KubeClient, Obj, Resource
from flaggerpy.kube.ratelimit import Backoff
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import Listed, ReconnectReason, Transform, Watcher, WatchEvent, object_key
from flaggerpy.log import get_logger

log = get_logger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]
AddHandler = Callable[[Obj], Awaitable[None] | None]
UpdateHandler = Callable[[Obj, Obj], Awaitable[None] | None]
DeleteHandler = Callable[[Obj], Awaitable[None] | None]

NAMESPACE_INDEX = "namespace"
OWNER_INDEX = "owner"


def namespace_index(obj: Obj) -> list[str]:
    """Index value: the object's namespace (none for cluster-scoped objects)."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def owner_index(obj: Obj) -> list[str]:
    """Index value: the uid of the object's controller owner reference, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("controller") and r.get("uid")]


class Store:
    """Objects keyed ``namespace/name`` with secondary indexes (namespace, controller owner uid, custom).

    The index values of each object are kept with it, so replacing or removing an object never re-runs the index
    functions on the old one, and the index sets are only touched when a value actually changed.
    """

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index, OWNER_INDEX: owner_index}
        self._indexers.update(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        # key -> the values each indexer gave for the cached object, in the order of ``_indexers``.
        self._values: dict[str, tuple[tuple[str, ...], ...]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> Obj | None:
        """The cached object for ``namespace/name`` (or ``name`` when cluster-scoped)."""
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        """The cached object ``name`` in ``namespace``."""
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def keys(self) -> list[str]:
        """All cached keys."""
        return list(self._items)

    def items(self) -> list[tuple[str, Obj]]:
        """All cached ``(key, object)`` pairs (shared references: treat the objects as read-only)."""
        return list(self._items.items())

    def objects(self) -> list[Obj]:
        """All cached objects (shared references: treat them as read-only)."""
        return list(self._items.values())

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add a named index; existing objects are indexed at once."""
        if name in self._indexers:
            raise ValueError(f"indexer {name!r} already exists")
        self._indexers[name] = func
        index: dict[str, set[str]] = {}
        self._indexes[name] = index
        for key, obj in self._items.items():
            values = tuple(func(obj))
            self._values[key] += (values,)
            for value in values:
                index.setdefault(value, set()).add(key)

    def by_index(self, name: str, value: str) -> list[Obj]:
        """Objects whose index ``name`` yields ``value``."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"no indexer named {name!r}; known: {sorted(self._indexes)}")
        keys = index.get(value)
        return [self._items[k] for k in keys] if keys else []

    def by_namespace(self, namespace: str) -> list[Obj]:
        """Objects in ``namespace``."""
        return self.by_index(NAMESPACE_INDEX, namespace)

    def by_owner(self, uid: str) -> list[Obj]:
        """Objects whose controller owner has ``uid``."""
        return self.by_index(OWNER_INDEX, uid)

    def put(self, obj: Obj) -> Obj | None:
        """Insert or replace; returns the previous object."""
        return self.put_key(object_key(obj), obj)

    def put_key(self, key: str, obj: Obj) -> Obj | None:
        """:meth:`put` for a caller that already knows ``key`` (it must be :func:`object_key` of ``obj``)."""
        old = self._items.get(key)
        self._items[key] = obj
        new_values = tuple(tuple(func(obj)) for func in self._indexers.values())
        old_values = self._values.get(key)
        if new_values == old_values:
            return old
        self._values[key] = new_values
        for position, (name, values) in enumerate(zip(self._indexes, new_values, strict=True)):
            previous = old_values[position] if old_values is not None else ()
            if values == previous:
                continue
            index = self._indexes[name]
            _drop(index, key, previous)
            for value in values:
                index.setdefault(value, set()).add(key)
        return old

    def remove(self, key: str) -> Obj | None:
        """Remove ``key``; returns the removed object."""
        old = self._items.pop(key, None)
        if old is not None:
            for name, values in zip(self._indexes, self._values.pop(key), strict=True):
                _drop(self._indexes[name], key, values)
        return old


def _drop(index: dict[str, set[str]], key: str, values: Iterable[str]) -> None:
    for value in values:
        keys = index.get(value)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del index[value]


class Informer:
    """Keeps a :class:`Store` of ``resource`` current and calls add/update/delete handlers on changes.

    Run it with ``start()``/``stop()`` or ``async with informer:``. Handlers may be sync or async; they run one at
    a time in event order; a failing handler is logged and does not stop the informer. The task is supervised: if
    the watch loop itself dies, it is restarted after a backoff (relisting, so nothing is lost), and :attr:`alive`
    turns False once it keeps dying (the liveness probe then restarts the process). ``transform`` reduces each
    object before it is cached (Secrets are kept as metadata and a digest, never their values).
    """

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        settings: WatchSettings | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.resource = resource
        self.store = Store(indexers)
        self.settings = settings or WatchSettings()
        self._watcher = Watcher(kube, resource, namespace, label_selector, field_selector, self.settings,
                                transform=transform)
        self.crashes = 0
        """Times the watch loop died and was restarted."""
        self._crashes_in_a_row = 0
        self._add: list[AddHandler] = []
        self._update: list[UpdateHandler] = []
        self._delete: list[DeleteHandler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        # Set while resume_handlers replays the cache: events wait for it so handlers still see changes in order.
        self._replay: asyncio.Future[None] | None = None

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; ``on_update(old, new)`` gets the previous and the new object."""
        if on_add:
            self._add.append(on_add)
        if on_update:
            self._update.append(on_update)
        if on_delete:
            self._delete.append(on_delete)

    def pause_handlers(self) -> None:
        """Keep the cache current but call no handler until :meth:`resume_handlers`.

        For a standby replica: its caches stay warm for a takeover, while handlers would only fill a work queue
        that no worker drains, so each event costs no more than storing it.
        """
        self._paused = True

    async def resume_handlers(self) -> None:
        """Call handlers again, starting with ``on_add`` for every cached object, as if the cache had just been
        listed; events arriving meanwhile are handled after that replay, in order."""
        if not self._paused:
            return
        self._paused = False
        replay = self._replay = asyncio.get_running_loop().create_future()
        try:
            if self._add:
                for key, obj in self.store.items():
                    await self._run_handlers(self._add, key, obj)
        finally:
            self._replay = None
            replay.set_result(None)

    @property
    def handlers_paused(self) -> bool:
        """True between :meth:`pause_handlers` and :meth:`resume_handlers`."""
        return self._paused

    @property
    def has_synced(self) -> bool:
        """True once the initial list was delivered to the store and handlers."""
        return self._synced.is_set()

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (from events and bookmarks)."""
        return self._watcher.resource_version

    def observe_reconnects(self, observer: Callable[[str, ReconnectReason], None]) -> None:
        """Call ``observer(resource, reason)`` each time the watch is re-opened after a failure (telemetry)."""
        resource = str(self.resource)
        self._watcher.on_reconnect = lambda reason: observer(resource, reason)

    def observe_connected(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` each time a watch stream is opened (the first one and every reconnect)."""
        self._watcher.on_connected = observer

    @property
    def relists(self) -> int:
        """How many times the informer had to relist after 410 Gone."""
        return self._watcher.relists

    async def wait_for_sync(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (client-go API shape)
        """Wait until :attr:`has_synced`; False if ``timeout`` seconds passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> asyncio.Task[None]:
        """Run the informer as a supervised task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"informer-{self.resource}")
        return self._task

    @property
    def alive(self) -> bool:
        """False when the informer was started and its task ended, or it keeps crashing
        (``WatchSettings.crash_loop_limit`` times in a row)."""
        if self._task is None:
            return True
        return not self._task.done() and self._crashes_in_a_row < self.settings.crash_loop_limit

    async def _supervise(self) -> None:
        settings = self.settings
        backoff = Backoff(settings.backoff_initial, settings.backoff_max, settings.backoff_jitter,
                          settings.backoff_reset_after)
        while True:
            started = time.monotonic()
            try:
                await self.run()
            except Exception as exc:  # the watch loop died: restart it, from a relist, after a backoff
                if time.monotonic() - started >= settings.backoff_reset_after:
                    backoff.reset()
                    self._crashes_in_a_row = 0
                self.crashes += 1
                self._crashes_in_a_row += 1
                delay = backoff.next_delay()
                # The relist after the restart is compared with what the store really holds: the event that
                # crashed the loop may be in the watcher's view but never reached the store and the handlers.
                self._watcher.known = dict(self.store.items())
                log.error("informer crashed; restarting", resource=str(self.resource), retry_in=round(delay, 3),
                          crashes=self.crashes, exc_info=exc)
                await asyncio.sleep(delay)
            else:
                return

    async def stop(self) -> None:
        """Cancel the informer task and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def __aenter__(self) -> Informer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Consume the watch stream forever, applying each change to the store, then to the handlers."""
        stream = self._watcher.events()
        try:
            async for item in stream:
                if isinstance(item, WatchEvent):
                    await self._dispatch(item)
                elif isinstance(item, Listed):
                    self._synced.set()
        finally:
            await stream.aclose()

    async def _dispatch(self, event: WatchEvent) -> None:
        if self._replay is not None:
            await asyncio.shield(self._replay)
        obj = event.object
        key = object_key(obj)
        if event.type == "DELETED":
            if self.store.remove(key) is not None and self._delete and not self._paused:
                await self._run_handlers(self._delete, key, obj)
            return
        old = self.store.put_key(key, obj)
        if self._paused:
            return
        if old is None:
            if self._add:
                await self._run_handlers(self._add, key, obj)
        elif self._update:
            await self._run_handlers(self._update, key, old, obj)

    async def _run_handlers(self, handlers: list[Any], key: str, *args: Obj) -> None:
        for handler in handlers:
            try:
                result = handler(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception:  # a broken handler must not stop the cache from following the server
                log.exception("informer handler failed", resource=str(self.resource), key=key)
