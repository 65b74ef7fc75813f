"""heap.ScheduledCollections: full collections on a schedule; what lives at start no longer takes part in them."""

from __future__ import annotations

import asyncio
import gc

from flaggerpy import heap


async def test_full_collections_run_on_the_schedule_and_stop_restores_cpython_s() -> None:
    before = gc.get_threshold()
    collections = heap.ScheduledCollections(period=0.05)
    cache = [{"metadata": {"name": f"podinfo-{i}"}} for i in range(1000)]
    collections.start()
    try:
        assert gc.get_freeze_count() >= len(cache)
        young, middle, old = gc.get_threshold()
        assert (young, middle) == before[:2] and old > 10**9
        # Cyclic garbage that outlives the young generations is collected by the schedule.
        cycle: list[object] = []
        cycle.append(cycle)
        gc.collect(1)
        gc.collect(1)
        freed = gc.get_stats()[2]["collected"]
        del cycle
        await asyncio.sleep(0.2)
        assert gc.get_stats()[2]["collected"] > freed
    finally:
        await collections.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
