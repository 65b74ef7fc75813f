"""Full garbage collections on a schedule for the long-running processes: the controller and the sandbox.

CPython's cyclic collector scans its whole old generation whenever enough objects have been promoted into it. A
controller caches thousands of Kubernetes objects and replaces them as they change, so at 1,000 canaries such a
full scan came every few seconds and held the event loop for 100-290 ms (up to 420 ms in the sandbox), finding
next to nothing: decoded JSON has no reference cycles and is freed by reference counting the moment a newer version
replaces it. Those pauses were the tail of the detection latency. Here the young generations keep CPython's
thresholds (their collections are short and catch the cycles that die young: futures, exceptions), the objects
alive once the process has started are frozen out of every later scan, and the full collection runs on a fixed
period instead, so garbage in old cycles still goes, at a known cadence.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

FULL_COLLECTION_PERIOD = 300.0
"""Seconds between two full collections."""

_NEVER = 2**31 - 1


class ScheduledCollections:
    """Full collections every ``period`` seconds instead of by allocation count, from :meth:`start` to :meth:`stop`."""

    def __init__(self, period: float = FULL_COLLECTION_PERIOD) -> None:
        self.period = period
        self._thresholds = gc.get_threshold()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Collect and freeze what is alive now, then leave full collections to the schedule."""
        gc.collect()
        gc.freeze()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, _NEVER)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduled-gc")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            gc.collect()

    async def stop(self) -> None:
        """Back to CPython's own schedule."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
