"""Offload: a canary's outbound work runs in its own lane, in order, under a deadline, and wakes the canary."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flaggerpy.canary.offload import DeadlineExceeded, Offload, Pending
from tests.integration.conftest import wait_for


async def test_fast_work_is_used_inline_and_slow_work_wakes_the_canary_once_done() -> None:
    woken: list[str] = []
    lanes = Offload(deadline=5, inline_wait=0.2, wake=woken.append)

    async def fast() -> str:
        return "fast"

    assert await lanes.result("ns/a", "step-1", "gate", fast, ttl=60) == ("fast", True)
    assert woken == [], "taken inline: no extra reconcile"
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    lanes.inline_wait = 0.0
    with pytest.raises(Pending):
        await lanes.result("ns/a", "step-1", "analysis", slow, ttl=60)
    with pytest.raises(Pending):
        await lanes.result("ns/a", "step-1", "analysis", slow, ttl=60)  # asked again: still the same work
    release.set()
    await wait_for(lambda: woken == ["ns/a"])
    assert await lanes.result("ns/a", "step-1", "analysis", slow, ttl=60) == ("slow", True)
    assert await lanes.result("ns/a", "step-1", "gate", fast, ttl=60) == ("fast", False), "kept for the step"
    await lanes.close()


async def test_a_new_step_cancels_the_old_steps_work_and_a_deadline_ends_hanging_work() -> None:
    lanes = Offload(deadline=0.05, inline_wait=0.0)
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Pending):
        await lanes.result("ns/a", "step-1", "gate", hang, ttl=60)
    await asyncio.sleep(0)
    with pytest.raises(Pending):
        await lanes.result("ns/a", "step-2", "gate", hang, ttl=60)
    await asyncio.wait_for(cancelled.wait(), 5)
    await wait_for(lambda: not lanes.busy("ns/a"))
    outcome, _ = await lanes.result("ns/a", "step-2", "gate", hang, ttl=60)
    assert isinstance(outcome, DeadlineExceeded)
    assert str(outcome) == "no answer within the step deadline of 0.05s"
    await lanes.close()


async def test_a_lane_keeps_the_order_of_its_canary_and_lanes_do_not_wait_for_each_other() -> None:
    lanes = Offload(deadline=5, inline_wait=0.0)
    order: list[str] = []
    stuck = asyncio.Event()

    def work(name: str, wait: asyncio.Event | None = None) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if wait is not None:
                await wait.wait()
            order.append(name)

        return run

    lanes.spawn("ns/hostile", work("hostile", stuck))
    lanes.spawn("ns/a", work("a-event"))
    with pytest.raises(Pending):
        await lanes.result("ns/a", "step-1", "gate", work("a-hook"), ttl=60)
    lanes.spawn("ns/a", work("a-alert"))
    await wait_for(lambda: len(order) == 3)
    assert order == ["a-event", "a-hook", "a-alert"], "in the order asked, the hostile lane still stuck"
    stuck.set()
    await wait_for(lambda: order[-1] == "hostile")
    await lanes.close()
