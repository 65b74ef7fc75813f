"""``--max-concurrent-canaries`` ordering: the line is read from the cached statuses (wait start, then name), so a
fresh process (a restart, a new leader) admits in the same order; in-memory state only bridges cache lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flaggerpy.canary import status as st
from flaggerpy.canary.slots import WAIT_REASON, Slots, wait_start

T0 = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)


def canary(name: str, phase: str = "Initialized", waiting_since: datetime | None = None, rv: int = 1,
           namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    """A cached Canary; ``waiting_since`` gives it the Halted condition the reconciler writes for a waiter."""
    status: dict[str, Any] = {"phase": phase}
    if waiting_since is not None:
        st.halt(status, WAIT_REASON, "waiting for a free analysis slot (1 canaries are being analysed)",
                waiting_since)
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)}, "spec": spec,
            "status": status}


def test_limit_zero_is_unlimited() -> None:
    slots = Slots(0)
    census = slots.census([canary("a", "Progressing"), canary("b", "Progressing")])
    assert slots.may_start("ns/z", census, T0)
    assert slots.next_up(census) == []


def test_a_fresh_process_admits_the_longest_waiter_first_whatever_order_it_asks_in() -> None:
    cache = [
        canary("a", waiting_since=T0 + timedelta(seconds=30)),
        canary("b", waiting_since=T0 + timedelta(seconds=10)),
        canary("c", waiting_since=T0 + timedelta(seconds=20)),
    ]
    slots = Slots(1)  # nothing in memory: as after a restart or a failover
    census = slots.census(cache)
    assert not slots.may_start("ns/a", census, T0 + timedelta(hours=1))
    assert not slots.may_start("ns/c", census, T0 + timedelta(hours=1))
    assert slots.may_start("ns/b", census, T0 + timedelta(hours=1))
    assert slots.next_up(census) == ["ns/b"]
    assert Slots(2).next_up(Slots(2).census(cache)) == ["ns/b", "ns/c"]


def test_waiters_of_the_same_second_go_by_namespace_and_name() -> None:
    cache = [canary("b", waiting_since=T0), canary("a", waiting_since=T0, namespace="zz"),
             canary("a", waiting_since=T0)]
    slots = Slots(1)
    assert slots.next_up(slots.census(cache)) == ["ns/a"]
    assert Slots(3).next_up(Slots(3).census(cache)) == ["ns/a", "ns/b", "zz/a"]


def test_a_new_arrival_queues_behind_earlier_waiters_and_compares_as_it_will_be_written() -> None:
    slots = Slots(1)
    census = slots.census([canary("m", waiting_since=T0)])
    assert not slots.may_start("ns/z", census, T0 + timedelta(seconds=1))
    # Within the waiter's second the newcomer will be written with the same whole-second time: the name decides,
    # before the write exactly as after it.
    assert slots.may_start("ns/a", census, T0 + timedelta(microseconds=700_000))
    assert not slots.may_start("ns/z", census, T0 + timedelta(microseconds=700_000))


def test_no_one_starts_while_every_slot_is_held() -> None:
    slots = Slots(1)
    cache = [canary("busy", "Promoting"), canary("a", waiting_since=T0)]
    census = slots.census(cache)
    assert not slots.may_start("ns/a", census, T0)
    assert slots.next_up(census) == []
    # A canary waiting for confirm-rollout approval passed the slot check and starts without asking again.
    assert slots.next_up(slots.census([canary("approving", "Waiting"), canary("a", waiting_since=T0)])) == []


def test_an_admitted_canary_holds_its_slot_before_the_cache_shows_it() -> None:
    slots = Slots(1)
    cache = [canary("a", waiting_since=T0), canary("b", waiting_since=T0 + timedelta(seconds=5))]
    assert slots.may_start("ns/a", slots.census(cache), T0)
    slots.admit("ns/a")
    assert not slots.may_start("ns/b", slots.census(cache), T0)  # the cache still shows a waiting
    slots.release("ns/a")
    cache = [canary("a", "Succeeded"), cache[1]]
    assert slots.may_start("ns/b", slots.census(cache), T0)


def test_a_written_wait_keeps_its_place_until_the_cache_shows_it() -> None:
    slots = Slots(1)
    written = canary("z", waiting_since=T0, rv=7)
    slots.queued("ns/z", written["status"], "7")
    stale = [canary("busy", "Progressing"), canary("z", rv=6), canary("a", waiting_since=T0 + timedelta(seconds=3))]
    assert slots.census(stale).waiting["ns/z"] == T0
    done = [canary("busy", "Succeeded"), canary("z", rv=6), canary("a", waiting_since=T0 + timedelta(seconds=3))]
    assert slots.next_up(slots.census(done)) == ["ns/z"]
    # Once the cache has the write (or a later version) it alone says who waits: here z no longer does.
    moved_on = [canary("busy", "Succeeded"), canary("z", rv=8), canary("a", waiting_since=T0 + timedelta(seconds=3))]
    assert slots.next_up(slots.census(moved_on)) == ["ns/a"]
    assert slots.census(stale).waiting.keys() == {"ns/a"}  # the bridge is gone for good


def test_a_finished_canary_frees_its_slot_before_the_cache_shows_it() -> None:
    slots = Slots(1)
    slots.freed("ns/done", "9")
    lagging = [canary("done", "Finalising", rv=8), canary("a", waiting_since=T0)]
    assert slots.next_up(slots.census(lagging)) == ["ns/a"]
    slots.admit("ns/a")
    assert slots.next_up(slots.census(lagging)) == []
    # Caught up: the cache is the truth again, also if that canary analyses once more later.
    slots.release("ns/a")
    assert slots.census([canary("done", "Succeeded", rv=9)]).busy == frozenset()
    assert slots.census([canary("done", "Progressing", rv=12)]).busy == {"ns/done"}


def test_waiters_that_will_not_be_reconciled_hold_no_place() -> None:
    old = T0 - timedelta(hours=1)
    suspended = canary("s", waiting_since=old, suspend=True)
    deleting = canary("d", waiting_since=old)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T09:00:00Z"
    invalid = canary("i", waiting_since=old)
    st.set_condition(invalid["status"], st.PROMOTED, "False", st.INVALID_SPEC, "spec.x: bad", old)
    istio = canary("o", waiting_since=old, provider="istio")
    cache = [suspended, deleting, invalid, istio, canary("a", waiting_since=T0)]
    slots = Slots(1)
    census = slots.census(cache, eligible=lambda obj: obj["spec"].get("provider") != "istio")
    assert list(census.waiting) == ["ns/a"]
    assert slots.may_start("ns/a", census, T0)


def test_only_an_idle_canary_with_the_slot_reason_waits() -> None:
    other = canary("r")
    st.halt(other["status"], "ConfigNotFound", "configmap x not found", T0)
    analysing = canary("p", "Progressing", waiting_since=T0)
    assert Slots(1).census([other, analysing]).waiting == {}
    assert wait_start(other["status"]) is None
    assert wait_start(canary("w", waiting_since=T0)["status"]) == T0


def test_rewriting_the_same_wait_keeps_its_start() -> None:
    status: dict[str, Any] = {"phase": "Succeeded"}
    message = "waiting for a free analysis slot (1 canaries are being analysed)"
    st.halt(status, WAIT_REASON, message, T0)
    st.halt(status, WAIT_REASON, message, T0 + timedelta(minutes=5))
    assert wait_start(status) == T0
    # A restart with another limit changes the words, not when the wait began.
    st.halt(status, WAIT_REASON, message.replace("1 canaries", "2 canaries"), T0 + timedelta(minutes=9))
    assert wait_start(status) == T0
