"""``--max-concurrent-canaries``: new revisions beyond the limit wait, and start in the order they arrived.

The order is read from what every replica can see: a waiting canary carries a ``Halted`` condition with reason
``MaxConcurrentCanaries`` whose ``lastTransitionTime`` is when its wait began, so the queue is every cached waiter
ordered by (wait start, namespace/name). A restarted controller or a new leader therefore admits in the same order
the previous one would have. What this process remembers only bridges the moments its own status writes have not
reached the informer cache yet.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flaggerpy.canary import status as st
from flaggerpy.canary.phases import ACTIVE, IDLE, Phase
from flaggerpy.kube.versions import is_older
from flaggerpy.kube.watch import object_key, resource_version

WAIT_REASON = "MaxConcurrentCanaries"
"""The Halted reason of a canary waiting for an analysis slot."""

# A canary whose confirm-rollout gate said no has passed the slot check and starts without asking again once the
# gate says yes, so it keeps its slot while it waits for approval.
HOLDING: frozenset[Phase] = ACTIVE | {Phase.WAITING}

Eligible = Callable[[Mapping[str, Any]], bool]
"""Whether a cached canary is this controller's to start (a waiter that is not cannot hold a place)."""


def _everyone(_: Mapping[str, Any]) -> bool:
    return True


def wait_start(status: Mapping[str, Any]) -> datetime | None:
    """When the canary began waiting for a slot, per its status; None when it is not waiting for one."""
    cond = st.condition(status, st.HALTED)
    if cond is None or cond.get("reason") != WAIT_REASON:
        return None
    return st.parse_time(cond.get("lastTransitionTime"))


def _may_wait(obj: Mapping[str, Any]) -> bool:
    """Whether a cached waiter will be reconciled again: a suspended, deleted or invalid canary is not, and a
    stale wait condition it still carries must not hold up the canaries behind it."""
    if (obj.get("spec") or {}).get("suspend") or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    promoted = st.condition(obj.get("status") or {}, st.PROMOTED)
    return promoted is None or promoted.get("reason") != st.INVALID_SPEC


@dataclass(frozen=True)
class Census:
    """Who holds a slot and who waits for one, as the cache (plus this process's unseen writes) shows it."""

    busy: frozenset[str]
    waiting: Mapping[str, datetime]
    """Waiting keys and when their wait began."""

    def free(self, limit: int, key: str | None = None) -> int:
        """Slots free under ``limit``, not counting the one ``key`` may already hold."""
        return limit - len(self.busy - {key} if key else self.busy)


class Slots:
    """First come, first served admission of new revisions into analysis; ``limit`` 0 means unlimited.

    Admitted keys count as running until released, even before the informer cache shows their new phase, so two
    workers never both take the last slot. Likewise a key whose wait this process has just written counts as
    waiting, and one whose analysis it has just ended as free, until the cache shows that write.
    """

    def __init__(self, limit: int = 0) -> None:
        self.limit = max(0, limit)
        self._running: set[str] = set()
        # key -> (resourceVersion of our write, wait start written): waits the cache does not show yet.
        self._queued: dict[str, tuple[str, datetime]] = {}
        # key -> resourceVersion of our write that ended its analysis: the cache may still show it analysing.
        self._freed: dict[str, str] = {}

    def census(self, canaries: Iterable[Mapping[str, Any]], eligible: Eligible = _everyone) -> Census:
        """Who is busy and who waits among the cached ``canaries`` (one pass; nothing is read from the API)."""
        busy = set(self._running)
        waiting: dict[str, datetime] = {}
        versions: dict[str, str] = {}
        for obj in canaries:
            key = object_key(obj)
            if key in self._queued or key in self._freed:
                versions[key] = resource_version(obj)
            status = obj.get("status") or {}
            phase = st.phase_of(status)
            if phase in HOLDING:
                busy.add(key)
            elif phase in IDLE:
                since = wait_start(status)
                if since is not None and _may_wait(obj) and eligible(obj):
                    waiting[key] = since
        for key, (version, since) in list(self._queued.items()):
            if self._caught_up(versions.get(key), version):
                del self._queued[key]
            else:
                waiting.setdefault(key, since)
        for key, version in list(self._freed.items()):
            if self._caught_up(versions.get(key), version):
                del self._freed[key]
            else:
                busy.discard(key)
        return Census(frozenset(busy), waiting)

    @staticmethod
    def _caught_up(cached: str | None, written: str) -> bool:
        # A key gone from the cache has nothing left to bridge.
        return cached is None or not is_older(cached, written)

    def may_start(self, key: str, census: Census, at: datetime) -> bool:
        """Whether ``key`` may start its analysis now: a slot is free and no earlier waiter is owed it.

        ``at`` is the time of this step: a key not yet waiting would record it as its wait start.
        """
        if self.limit == 0:
            return True
        free = census.free(self.limit, key)
        if free <= 0:
            return False
        mine = (census.waiting.get(key) or _as_written(at), key)
        ahead = sum(1 for other, since in census.waiting.items() if other != key and (since, other) < mine)
        return ahead < free

    def next_up(self, census: Census) -> list[str]:
        """The waiters that may start now, oldest first (as many as there are free slots)."""
        free = census.free(self.limit)
        if self.limit == 0 or free <= 0 or not census.waiting:
            return []
        return [key for _, key in heapq.nsmallest(free, ((since, key) for key, since in census.waiting.items()))]

    def queued(self, key: str, status: Mapping[str, Any], version: str) -> None:
        """``key``'s wait was written (its status at ``version``): it holds its place until the cache shows it."""
        since = wait_start(status)
        if since is not None:
            self._queued[key] = (version, since)

    def admit(self, key: str) -> None:
        """``key`` starts its analysis: it leaves the queue and holds a slot."""
        self._queued.pop(key, None)
        self._freed.pop(key, None)
        if self.limit:
            self._running.add(key)

    def release(self, key: str) -> None:
        """``key`` finished (or no longer needs a slot): free its slot and its place in the queue."""
        self._queued.pop(key, None)
        self._running.discard(key)

    def freed(self, key: str, version: str) -> None:
        """``key``'s status written at ``version`` ends its analysis: its slot is free before the cache says so."""
        if self.limit:
            self._freed[key] = version


def _as_written(at: datetime) -> datetime:
    """``at`` as a condition's lastTransitionTime stores it (whole seconds), so a wait start compares the same
    before and after it is written."""
    return st.parse_time(st.timestamp(at)) or at
