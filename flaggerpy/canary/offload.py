"""A canary's slow work (webhooks, metric queries, alerts, Event hooks) runs in the canary's own lane, never in a
shared worker.

Each canary has one lane: a task that runs the canary's outbound work one piece at a time, in the order it was
asked for, each piece under the step deadline. So a hanging hook delays only its own canary, and the hooks, Event
webhooks and alerts of one canary still go out in the order the state machine produced them.

A step asks :meth:`Offload.result` for what it needs. Work that ends within ``inline_wait`` (a local hook, a fast
Prometheus) is used at once; otherwise the reconcile ends with :class:`Pending`, and the end of the work wakes the
canary, whose next reconcile finds the result. Results are kept for the step they were asked for (for at most
``ttl`` seconds); asking for another step drops them and cancels the old step's work. Work that follows a persisted
step and must not hold it (post-rollout hooks, alerts, Event webhooks) goes to :meth:`Offload.spawn`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.log import get_logger

log = get_logger(__name__)

Wake = Callable[[str], None]
Work = Callable[[], Awaitable[Any]]


class Pending(Exception):
    """The step waits for work running in the canary's lane; the end of that work wakes the canary."""


class DeadlineExceeded(Exception):
    """Work did not finish within the step deadline (it was cancelled). Returned as the work's outcome, so the
    step reads it like any answer (a hook that did not pass, a check that failed)."""


@dataclass
class _Item:
    """One piece of work in a lane; ``future`` carries its outcome to a step (None for background work)."""

    work: Work
    step: Hashable = None
    future: asyncio.Future[Any] | None = None
    finished_at: float | None = None
    used: bool = False
    waiting: bool = False
    """A reconcile is waiting inline for the outcome: it takes it itself, no wake-up needed."""


@dataclass
class _Lane:
    """One canary's queue of work, its runner task, and the results of its current step by name."""

    queue: deque[_Item] = field(default_factory=deque)
    runner: asyncio.Task[None] | None = None
    current: asyncio.Task[Any] | None = None
    current_item: _Item | None = None
    results: dict[Hashable, _Item] = field(default_factory=dict)


class Offload:
    """The lanes of every canary (see the module docs); ``wake(key)`` asks for a reconcile of ``key``."""

    def __init__(self, *, deadline: float, inline_wait: float, wake: Wake | None = None) -> None:
        self.deadline = deadline
        self.inline_wait = inline_wait
        self.wake = wake
        self._lanes: dict[str, _Lane] = {}

    def busy(self, key: str) -> bool:
        """Whether ``key``'s lane has work queued or running."""
        lane = self._lanes.get(key)
        return lane is not None and (bool(lane.queue) or lane.current is not None)

    async def result(self, key: str, step: Hashable, what: Hashable, work: Work, ttl: float) -> tuple[Any, bool]:
        """``(outcome of work, first use)`` for canary ``key`` at ``step``; ``what`` names the work in the step.

        The outcome is known when the work ended less than ``ttl`` seconds ago, or when fresh work ends within
        ``inline_wait``; otherwise this raises :class:`Pending`. Work past the deadline has a
        :class:`DeadlineExceeded` as its outcome; an exception of the work itself is raised. ``first use`` is True
        only the first time an outcome is returned, so a step taken again after waiting for other work does not
        repeat the Events of this one.
        """
        lane = self._lanes.setdefault(key, _Lane())
        self._drop_other_steps(lane, step)
        item = lane.results.get(what)
        if item is not None and item.finished_at is not None and time.monotonic() - item.finished_at > ttl:
            del lane.results[what]
            item = None
        if item is None:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            item = _Item(work, step, future)
            lane.results[what] = item
            self._enqueue(key, lane, item)
            item.waiting = True
            try:
                await asyncio.wait({future}, timeout=self.inline_wait)
            finally:
                item.waiting = False
        asked = item.future
        assert asked is not None  # every item in ``results`` was asked for by a step
        if not asked.done():
            raise Pending(f"{key}: waiting for {what}")
        first = not item.used
        item.used = True
        return asked.result(), first

    def spawn(self, key: str, work: Work) -> None:
        """Run ``work`` in ``key``'s lane after what is already there; its failures are logged."""
        lane = self._lanes.setdefault(key, _Lane())
        self._enqueue(key, lane, _Item(work))

    def forget(self, key: str) -> None:
        """The canary is gone: cancel its lane."""
        lane = self._lanes.pop(key, None)
        if lane is not None and lane.runner is not None:
            lane.runner.cancel()

    async def close(self) -> None:
        """Cancel every lane and wait for them to end (the controller is stopping)."""
        runners = [lane.runner for lane in self._lanes.values() if lane.runner is not None]
        self._lanes.clear()
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def _drop_other_steps(self, lane: _Lane, step: Hashable) -> None:
        stale = [what for what, item in lane.results.items() if item.step != step]
        for what in stale:
            item = lane.results.pop(what)
            if item.future is not None and not item.future.done():
                item.future.cancel()
                if lane.current_item is item and lane.current is not None:
                    lane.current.cancel()

    def _enqueue(self, key: str, lane: _Lane, item: _Item) -> None:
        lane.queue.append(item)
        if lane.runner is None or lane.runner.done():
            lane.runner = asyncio.get_running_loop().create_task(self._run(key, lane), name=f"lane-{key}")

    async def _run(self, key: str, lane: _Lane) -> None:
        while lane.queue:
            item = lane.queue.popleft()
            if item.future is not None and item.future.cancelled():
                continue  # asked for by a step that has moved on
            lane.current_item = item
            lane.current = asyncio.get_running_loop().create_task(self._bounded(item.work))
            try:
                outcome: Any = await asyncio.shield(lane.current)
                error: BaseException | None = None
            except asyncio.CancelledError:
                if not lane.current.cancelled():
                    lane.current.cancel()  # the lane itself is cancelled (forget or close): the work goes with it
                    raise
                lane.current = lane.current_item = None
                continue
            except Exception as exc:
                outcome, error = None, exc
            lane.current = lane.current_item = None
            self._settle(key, item, outcome, error)

    def _settle(self, key: str, item: _Item, outcome: Any, error: BaseException | None) -> None:
        item.finished_at = time.monotonic()
        if item.future is None:
            if error is not None:
                log.error("background work of a canary failed", canary=key, exc_info=error)
            elif isinstance(outcome, DeadlineExceeded):
                log.warning("background work of a canary cancelled", canary=key, error=str(outcome))
            return
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(outcome)
        if self.wake is not None and not item.waiting:
            # The reconcile that asked stopped waiting for it: the canary looks again and finds the outcome.
            self.wake(key)

    async def _bounded(self, work: Work) -> Any:
        try:
            async with asyncio.timeout(self.deadline):
                return await work()
        except TimeoutError:
            return DeadlineExceeded(f"no answer within the step deadline of {self.deadline:g}s")
