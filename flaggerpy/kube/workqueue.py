"""A client-go style work queue for asyncio.

Three structures give the guarantees: ``queue`` (order of keys waiting), ``dirty`` (keys that need processing) and
``processing`` (keys a worker holds). A key is queued at most once; a key is never handed to two workers at once;
a key added while a worker holds it is processed again after :meth:`WorkQueue.done`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from flaggerpy.kube.ratelimit import ControllerRateLimiter, ItemBackoff, TokenBucket
from flaggerpy.kube.reconcile import Result, handle_result
from flaggerpy.kube.settings import WorkQueueSettings

K = TypeVar("K", bound=Hashable)
DepthObserver = Callable[[int], None]


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


class WorkQueue(Generic[K]):
    """De-duplicating queue of keys with per-key rate limiting and delayed adds.

    ``on_depth`` (settable after construction) is called with the new :func:`len` whenever it changes, so a depth
    gauge follows the queue without polling it.
    """

    def __init__(
        self, settings: WorkQueueSettings | None = None, name: str = "", *, on_depth: DepthObserver | None = None
    ) -> None:
        self.settings = settings or WorkQueueSettings()
        self.name = name
        self.on_depth = on_depth
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._nonempty = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._shutting_down = False
        self._limiter: ControllerRateLimiter[K] = ControllerRateLimiter(
            ItemBackoff(self.settings.backoff_base, self.settings.backoff_cap),
            TokenBucket(self.settings.bucket_qps, self.settings.bucket_burst),
        )
        # Delayed adds: one heap and one timer task; ``_deadlines`` holds the live deadline per key so stale heap
        # entries (superseded by an earlier deadline) are skipped when they surface.
        self._heap: list[tuple[float, int, K]] = []
        self._deadlines: dict[K, float] = {}
        self._seq = itertools.count()
        self._timer_wakeup = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Keys waiting to be processed (the depth metric); excludes keys being processed or delayed."""
        return len(self._queue)

    def _depth_changed(self) -> None:
        if self.on_depth is not None:
            self.on_depth(len(self._queue))

    @property
    def shutting_down(self) -> bool:
        """True once :meth:`shutdown` was called."""
        return self._shutting_down

    @property
    def in_flight(self) -> int:
        """Keys currently held by workers."""
        return len(self._processing)

    @property
    def delayed(self) -> int:
        """Keys waiting for their :meth:`add_after` deadline."""
        return len(self._deadlines)

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is already queued; if a worker holds it, queue it again after ``done``."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._nonempty.set()
        self._drained.clear()
        self._depth_changed()

    async def get(self) -> K:
        """Wait for a key and mark it as processing; the caller must call :meth:`done` with it."""
        while True:
            if self._shutting_down:
                raise ShutDown(self.name)
            if self._queue:
                key = self._queue.popleft()
                if not self._queue:
                    self._nonempty.clear()
                self._dirty.discard(key)
                self._processing.add(key)
                self._idle.clear()
                self._depth_changed()
                return key
            await self._nonempty.wait()

    def done(self, key: K) -> None:
        """Release ``key``; if it was added while held, it goes back into the queue."""
        if key not in self._processing:
            return
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._nonempty.set()
            self._depth_changed()
        if not self._processing:
            self._idle.set()
            if not self._queue:
                self._drained.set()

    async def join(self) -> None:
        """Wait until no key is queued or being processed (delayed keys do not count)."""
        while self._queue or self._processing:
            await self._drained.wait()
            await asyncio.sleep(0)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending deadline for the same key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        current = self._deadlines.get(key)
        if current is not None and current <= deadline:
            return
        self._deadlines[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if self._heap[0][2] == key:
            self._timer_wakeup.set()
        if self._timer is None or self._timer.done():
            self._timer = loop.create_task(self._run_timer(), name=f"workqueue-timer-{self.name}")

    def add_rate_limited(self, key: K) -> float:
        """Requeue ``key`` after the larger of its own exponential backoff (base doubling, capped) and the queue's
        shared token bucket; returns the delay used."""
        delay = self._limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff, typically after it was processed successfully."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """How many rate-limited requeues ``key`` had since the last :meth:`forget`."""
        return self._limiter.failures(key)

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while self._heap and not self._shutting_down:
            deadline, _, key = self._heap[0]
            if self._deadlines.get(key) != deadline:
                heapq.heappop(self._heap)
                continue
            wait = deadline - loop.time()
            if wait <= 0:
                heapq.heappop(self._heap)
                del self._deadlines[key]
                self.add(key)
                continue
            self._timer_wakeup.clear()
            # Sleep until the earliest deadline, or until an earlier one is pushed.
            try:
                async with asyncio.timeout(wait):
                    await self._timer_wakeup.wait()
            except TimeoutError:
                pass

    async def shutdown(self, drain: bool = True) -> None:
        """Stop handing out keys and drop queued and delayed ones; with ``drain``, wait for in-flight keys."""
        self._shutting_down = True
        self._queue.clear()
        self._depth_changed()
        self._dirty.clear()
        self._heap.clear()
        self._deadlines.clear()
        if not self._processing:
            self._drained.set()
        self._nonempty.set()  # wakes every waiting get() so it can raise ShutDown
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        if drain:
            await self._idle.wait()

    async def run_workers(self, n: int, handler: Callable[[K], Awaitable[Result]]) -> None:
        """Run ``n`` workers calling ``handler(key)`` until :meth:`shutdown`.

        The handler's :class:`~flaggerpy.kube.reconcile.Result` (or :meth:`Result.failed` when it raises) goes to
        :func:`~flaggerpy.kube.reconcile.handle_result`, the one place that forgets, delays or rate-limits the key.
        """
        if n < 1:
            raise ValueError(f"workers: must be >= 1, got {n}")

        async def worker() -> None:
            while True:
                try:
                    key = await self.get()
                except ShutDown:
                    return
                try:
                    result = await handler(key)
                except Exception as exc:
                    result = Result.failed(exc)
                try:
                    handle_result(self, key, result)
                finally:
                    self.done(key)

        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(worker(), name=f"workqueue-worker-{self.name}-{i}")
