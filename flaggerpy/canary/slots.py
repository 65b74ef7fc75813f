"""``--max-concurrent-canaries``: new revisions beyond the limit wait, and start in the order they arrived."""

from __future__ import annotations

from collections.abc import Collection


class Slots:
    """First come, first served admission of new revisions into analysis.

    ``limit`` 0 means unlimited. Admitted keys count as running until released, even before the informer cache
    shows their new phase, so two workers never both take the last slot. The waiting order lives in memory: after a
    restart, canaries queue again in the order the controller sees them, the best a stateless replica can do
    without another status field.
    """

    def __init__(self, limit: int = 0) -> None:
        self.limit = max(0, limit)
        self._waiting: dict[str, None] = {}
        self._running: set[str] = set()

    def may_start(self, key: str, active: Collection[str]) -> bool:
        """Whether ``key`` may start its analysis now, given the keys the cache shows analysing."""
        if self.limit == 0:
            return True
        self._waiting.setdefault(key, None)
        busy = (set(active) | self._running) - {key}
        position = list(self._waiting).index(key)
        return position < self.limit - len(busy)

    def admit(self, key: str) -> None:
        """``key`` starts its analysis: it leaves the queue and holds a slot."""
        self._waiting.pop(key, None)
        if self.limit:
            self._running.add(key)

    def release(self, key: str) -> None:
        """``key`` finished (or no longer needs a slot): free its slot and its place in the queue."""
        self._waiting.pop(key, None)
        self._running.discard(key)

    def waiting(self) -> list[str]:
        """Keys waiting for a slot, oldest first."""
        return list(self._waiting)
