"""Object storage: one global resourceVersion counter, a bounded event history and watch subscribers.

Stored objects are never mutated: every write stores a new dict, so reads, list results and watch events can share
them without copying, and each event is serialised to JSON at most once per apiVersion while it is among the newest
(older ones, kept only for resuming watches, are serialised again when replayed).
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flaggerpy.sandbox.apiserver import jsonio
from flaggerpy.sandbox.apiserver.errors import gone
from flaggerpy.sandbox.apiserver.registry import StorageKey

ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
# How many of the newest events keep their encoded watch lines.
_ENCODED_WINDOW = 1000


def encode(value: Any) -> bytes:
    """Compact JSON, as the server sends it."""
    return jsonio.dumps(value)


@dataclass(slots=True)
class Event:
    """One change to one object; ``old`` is the previous state of a MODIFIED object."""

    rv: int
    type: str
    key: StorageKey
    obj: dict[str, Any]
    old: dict[str, Any] | None = None
    _encoded: dict[tuple[str, str], bytes] | None = None

    def encode(self, api_version: str, event_type: str | None = None) -> bytes:
        """The watch line ``{"type":..., "object":...}`` for this event, cached per (type, apiVersion)."""
        event_type = event_type or self.type
        cache_key = (event_type, api_version)
        if self._encoded is None:
            self._encoded = {}
        line = self._encoded.get(cache_key)
        if line is None:
            obj = self.obj if self.obj.get("apiVersion") == api_version else {**self.obj, "apiVersion": api_version}
            line = encode({"type": event_type, "object": obj}) + b"\n"
            self._encoded[cache_key] = line
        return line

    def forget_encoding(self) -> None:
        """Drop the cached lines (the event stays replayable; a replay encodes it again)."""
        self._encoded = None


class Subscription:
    """Events for one watcher, buffered until it takes them; ``key`` None means every resource.

    A reader waits with :meth:`wait` and takes everything pending at once with :meth:`take`, so a burst of writes
    costs it one wake-up; :meth:`wake` lets a timer (bookmarks, deadlines) interrupt the wait without an event.
    """

    def __init__(self, store: Store, key: StorageKey | None, max_backlog: int) -> None:
        self.key = key
        self.overflowed = False
        self.closed = False
        self._pending: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._store = store
        self._max_backlog = max_backlog

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, event: Event) -> None:
        """Buffer an event; a watcher that falls too far behind is ended, as kube-apiserver does."""
        if self.closed:
            return
        if len(self._pending) >= self._max_backlog:
            # Ended but still subscribed: the store is iterating its subscribers now; the reader's close()
            # unsubscribes.
            self.overflowed = self.closed = True
            self.wake()
            return
        self._pending.append(event)
        self.wake()

    def wake(self) -> None:
        """End the reader's current :meth:`wait`."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Stop receiving events; the reader still gets what was buffered, then the end."""
        self._store.unsubscribe(self)
        self.closed = True
        self.wake()

    async def wait(self) -> None:
        """Until an event is buffered, the subscription ends, or :meth:`wake` is called."""
        if self._pending or self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> list[Event]:
        """Every buffered event, oldest first."""
        events = list(self._pending)
        self._pending.clear()
        return events

    async def get(self) -> Event | None:
        """The next event; None once the subscription has ended and its buffer is empty."""
        while not self._pending:
            if self.closed:
                return None
            await self.wait()
        return self._pending.popleft()


class Store:
    """Objects by storage key and (namespace, name), plus history and subscribers."""

    def __init__(self, history_size: int = 10_000, max_backlog: int = 100_000) -> None:
        self._objects: dict[StorageKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._rv = 0
        self._history: list[Event] = []
        self._history_rvs: list[int] = []
        self._history_size = history_size
        self._compacted_rv = 0
        self._subs: dict[StorageKey | None, set[Subscription]] = {}
        self._max_backlog = max_backlog
        # uid -> set of (storage key, object key) of objects that name it in ownerReferences
        self._dependents: dict[str, set[tuple[StorageKey, ObjectKey]]] = {}
        self._uids: dict[str, tuple[StorageKey, ObjectKey]] = {}

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion handed out."""
        return self._rv

    def next_rv(self) -> int:
        """Reserve the next resourceVersion."""
        self._rv += 1
        return self._rv

    def get(self, key: StorageKey, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (shared: do not mutate)."""
        bucket = self._objects.get(key)
        return None if bucket is None else bucket.get((namespace, name))

    def items(self, key: StorageKey, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Stored objects of a resource, in one namespace or all (shared: do not mutate)."""
        bucket = self._objects.get(key)
        if not bucket:
            return iter(())
        if namespace is None:
            return iter(list(bucket.values()))
        return iter([obj for (ns, _), obj in bucket.items() if ns == namespace])

    def exists_uid(self, uid: str) -> bool:
        """Whether an object with this uid is stored (ownerReferences point at uids)."""
        return uid in self._uids

    def dependents(self, uid: str) -> list[tuple[StorageKey, dict[str, Any]]]:
        """Objects whose ownerReferences name ``uid``."""
        found = []
        for key, (ns, name) in self._dependents.get(uid, set()):
            obj = self.get(key, ns, name)
            if obj is not None:
                found.append((key, obj))
        return found

    def put(self, key: StorageKey, obj: dict[str, Any], event_type: str) -> Event:
        """Store ``obj`` (which must carry a fresh resourceVersion) and emit an event."""
        meta = obj["metadata"]
        okey = (meta.get("namespace", ""), meta["name"])
        bucket = self._objects.setdefault(key, {})
        old = bucket.get(okey)
        bucket[okey] = obj
        self._uids[meta["uid"]] = (key, okey)
        self._index_owners(key, okey, old, obj)
        return self._emit(Event(int(meta["resourceVersion"]), event_type, key, obj, old))

    def remove(self, key: StorageKey, obj: dict[str, Any]) -> Event:
        """Remove an object; ``obj`` is its final state with a fresh resourceVersion."""
        meta = obj["metadata"]
        okey = (meta.get("namespace", ""), meta["name"])
        bucket = self._objects.get(key, {})
        old = bucket.pop(okey, None)
        self._uids.pop(meta.get("uid", ""), None)
        self._index_owners(key, okey, old, None)
        return self._emit(Event(int(meta["resourceVersion"]), "DELETED", key, obj))

    def _index_owners(
        self, key: StorageKey, okey: ObjectKey, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        old_uids = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        new_uids = {r.get("uid") for r in (new or {}).get("metadata", {}).get("ownerReferences") or []}
        for uid in old_uids - new_uids:
            deps = self._dependents.get(str(uid))
            if deps is not None:
                deps.discard((key, okey))
                if not deps:
                    del self._dependents[str(uid)]
        for uid in new_uids - old_uids:
            if uid:
                self._dependents.setdefault(str(uid), set()).add((key, okey))

    def _emit(self, event: Event) -> Event:
        self._history.append(event)
        self._history_rvs.append(event.rv)
        if len(self._history) > _ENCODED_WINDOW:
            # Live watchers encode an event within moments of its emission; keeping its lines for the whole
            # history would hold a second copy of every version as bytes.
            self._history[-_ENCODED_WINDOW - 1].forget_encoding()
        if len(self._history) > 2 * self._history_size:
            # Trim in chunks so appends stay amortised O(1).
            cut = len(self._history) - self._history_size
            self._compacted_rv = self._history_rvs[cut - 1]
            del self._history[:cut]
            del self._history_rvs[:cut]
        for sub in self._subs.get(event.key, ()):
            sub.offer(event)
        for sub in self._subs.get(None, ()):
            sub.offer(event)
        return event

    def events_after(self, key: StorageKey | None, rv: int) -> list[Event]:
        """History events of a resource after ``rv``; raises 410 Gone when some may have been dropped."""
        if rv < self._compacted_rv:
            raise gone(rv, self._compacted_rv + 1)
        start = bisect.bisect_right(self._history_rvs, rv)
        return [e for e in self._history[start:] if key is None or e.key == key]

    def subscribe(self, key: StorageKey | None) -> Subscription:
        """Receive every event of a resource (or of all, for None) from now on."""
        sub = Subscription(self, key, self._max_backlog)
        self._subs.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering events to ``sub``."""
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
