"""WorkQueue: de-duplication, one worker per key, re-add while processing, backoff, delayed adds, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaggerpy.kube.ratelimit import ControllerRateLimiter, ItemBackoff, TokenBucket
from flaggerpy.kube.reconcile import Result, handle_result
from flaggerpy.kube.settings import WorkQueueSettings
from flaggerpy.kube.workqueue import ShutDown, WorkQueue


async def test_duplicate_adds_are_processed_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a", "b"]:
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]
    assert len(q) == 0


async def test_key_readded_while_processing_is_processed_again_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a held key must not be handed to a second worker"
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_rate_limited_backoff_grows_caps_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(WorkQueueSettings(backoff_base=0.01, backoff_cap=0.05))
    delays = [q.add_rate_limited("a") for _ in range(5)]
    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    assert q.num_requeues("a") == 5
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.add_rate_limited("a") == 0.01
    assert await asyncio.wait_for(q.get(), 1) == "a"
    await q.shutdown(drain=False)


async def test_add_after_fires_in_deadline_order_and_earlier_deadline_wins() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.06)
    q.add_after("early", 0.02)
    q.add_after("middle", 0.04)
    q.add_after("moved", 0.5)
    q.add_after("moved", 0.03)  # earlier deadline replaces the later one
    q.add_after("middle", 0.5)  # a later deadline does not postpone
    got = [await asyncio.wait_for(q.get(), 1) for _ in range(4)]
    assert got == ["early", "moved", "middle", "late"]
    assert q.delayed == 0
    await q.shutdown(drain=False)


async def test_add_after_zero_adds_now() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0)
    assert len(q) == 1


async def test_shutdown_lets_in_flight_work_finish_and_stops_workers() -> None:
    q: WorkQueue[int] = WorkQueue()
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[int] = []

    async def handler(key: int) -> Result:
        started.set()
        await release.wait()
        finished.append(key)
        return Result.done()

    q.add(1)
    workers = asyncio.create_task(q.run_workers(1, handler))
    await started.wait()
    q.add(2)  # queued but never started: dropped by shutdown
    stopping = asyncio.create_task(q.shutdown())
    await asyncio.sleep(0)
    assert not stopping.done(), "shutdown must wait for the in-flight key"
    release.set()
    await asyncio.wait_for(stopping, 1)
    await asyncio.wait_for(workers, 1)
    assert finished == [1]
    with pytest.raises(ShutDown):
        await q.get()
    q.add(3)
    assert len(q) == 0, "adds after shutdown are ignored"


async def test_failing_handler_is_requeued_with_backoff_then_forgotten() -> None:
    q: WorkQueue[str] = WorkQueue(WorkQueueSettings(backoff_base=0.001, backoff_cap=0.01))
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(key: str) -> Result:
        attempts.append(q.num_requeues(key))
        if len(attempts) < 3:
            raise RuntimeError("transient")
        done.set()
        return Result.done()

    q.add("a")
    workers = asyncio.create_task(q.run_workers(1, handler))
    # The backoffs add up to 3 ms, but each failure is logged with its traceback, and rendering the first one
    # (rich, when installed) took over a second on a loaded 2-core machine: the bound only catches a hang.
    await asyncio.wait_for(done.wait(), 10)
    await q.shutdown()
    await workers
    assert attempts == [0, 1, 2]
    assert q.num_requeues("a") == 0


@settings(max_examples=40, deadline=None)
@given(
    adds=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=40),
    workers=st.integers(1, 5),
)
def test_property_no_key_is_processed_concurrently_and_every_add_is_seen(
    adds: list[tuple[int, int]], workers: int
) -> None:
    """Random adds (some while the key is being processed) with several workers: never two at once per key,
    and every key's last add is followed by a processing of that key."""

    async def scenario() -> None:
        q: WorkQueue[int] = WorkQueue()
        active: set[int] = set()
        processed_after_last_add: dict[int, bool] = {}
        violations: list[int] = []

        async def handler(key: int) -> Result:
            if key in active:
                violations.append(key)
            active.add(key)
            processed_after_last_add[key] = True
            for _ in range(key % 3):
                await asyncio.sleep(0)
            active.discard(key)
            return Result.done()

        runner = asyncio.create_task(q.run_workers(workers, handler))
        for key, yields in adds:
            q.add(key)
            processed_after_last_add[key] = False
            for _ in range(yields):
                await asyncio.sleep(0)
        await asyncio.wait_for(q.join(), 5)
        await q.shutdown()
        await runner
        assert violations == []
        assert all(processed_after_last_add.values()), processed_after_last_add

    asyncio.run(scenario())


async def test_conflict_keeps_the_backoff_growing_and_only_success_forgets_it() -> None:
    """The 409 path must not return "normally": a conflict requeues with a growing backoff (client-go's
    per-item limiter), a requeue-after or done result resets it (controller-runtime's reconcileHandler)."""
    q: WorkQueue[str] = WorkQueue(WorkQueueSettings(backoff_base=0.001, backoff_cap=10.0))
    results = [Result.conflict(RuntimeError("409")) for _ in range(4)] + [Result.requeue_after(30.0)]
    requeues: list[int] = []
    finished = asyncio.Event()

    async def handler(key: str) -> Result:
        requeues.append(q.num_requeues(key))
        result = results.pop(0)
        if not results:
            finished.set()
        return result

    q.add("a")
    workers = asyncio.create_task(q.run_workers(1, handler))
    await asyncio.wait_for(finished.wait(), 10)
    await asyncio.sleep(0)
    assert requeues == [0, 1, 2, 3, 4], "each conflict counts one more requeue; none is forgotten"
    assert q.num_requeues("a") == 0 and q.delayed == 1, "success forgets the backoff and schedules the next look"
    await q.shutdown()
    await workers


def test_handle_result_is_the_one_switch() -> None:
    calls: list[tuple[str, float | None]] = []

    class Recorder:
        name = "t"

        def forget(self, key: str) -> None:
            calls.append(("forget", None))

        def add_after(self, key: str, delay: float) -> None:
            calls.append(("add_after", delay))

        def add_rate_limited(self, key: str) -> float:
            calls.append(("add_rate_limited", None))
            return 0.5

    queue = Recorder()
    assert handle_result(queue, "k", Result.done()) is None
    assert handle_result(queue, "k", Result.requeue_after(7.0)) == 7.0
    assert handle_result(queue, "k", Result.conflict(RuntimeError("409"))) == 0.5
    assert handle_result(queue, "k", Result.failed(RuntimeError("boom"))) == 0.5
    assert calls == [("forget", None), ("forget", None), ("add_after", 7.0), ("add_rate_limited", None),
                     ("add_rate_limited", None)]


def test_many_failing_keys_share_the_bucket_beyond_its_burst() -> None:
    """client-go's default controller limiter: per-key backoff, and overall no more than qps once the burst is
    spent, so a thousand keys failing at once do not requeue a thousand times a second."""
    now = [0.0]
    limiter: ControllerRateLimiter[int] = ControllerRateLimiter(ItemBackoff(0.005, 1000.0),
                                                                TokenBucket(10.0, 100, clock=lambda: now[0]))
    delays = [limiter.when(key) for key in range(120)]
    assert delays[:100] == [0.005] * 100
    assert delays[100:] == pytest.approx([(i + 1) / 10 for i in range(20)])
    now[0] = 100.0  # long after: the bucket is full again, the keys' own backoffs have doubled
    assert limiter.when(0) == 0.01


def test_token_bucket_serves_in_order_and_refills_at_qps() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]
    now[0] = 1.0  # two tokens refilled pay the debt of the two reservations
    assert bucket.reserve() == 0.5
    now[0] = 100.0
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0], "never more than burst saved up"
    assert bucket.reserve() == 0.5
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
