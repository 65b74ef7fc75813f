"""``--max-concurrent-canaries``: new revisions beyond the limit wait, and start in the order they arrived."""

from __future__ import annotations

from collections.abc import Collection


class Slots:
    """First come, first served admission of new revisions into analysis.

    ``limit`` 0 means unlimited. The waiting order lives in memory: after a restart, canaries queue again in the
    order the controller sees them, which is the best a stateless replica can do without another status field.
    """

    def __init__(self, limit: int = 0) -> None:
        self.limit = max(0, limit)
        self._waiting: dict[str, None] = {}

    def may_start(self, key: str, active: Collection[str]) -> bool:
        """Whether ``key`` may start its analysis now, given the keys of canaries already analysing."""
        if self.limit == 0:
            return True
        self._waiting.setdefault(key, None)
        free = self.limit - len([k for k in active if k != key])
        position = list(self._waiting).index(key)
        return position < free

    def started(self, key: str) -> None:
        """``key`` left the queue (it started, or no longer needs a slot)."""
        self._waiting.pop(key, None)

    def waiting(self) -> list[str]:
        """Keys waiting for a slot, oldest first."""
        return list(self._waiting)
