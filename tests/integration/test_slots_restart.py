"""``--max-concurrent-canaries`` keeps its first-come-first-served order across a controller restart and a leader
change: the waiting order lives in the Canaries' status, not in the memory of the process that saw them arrive."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from flaggerpy.analysis.base import HookType
from flaggerpy.canary import status as st
from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.canary.slots import WAIT_REASON
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.settings import LeaderSettings
from tests.integration.conftest import (
    Cluster,
    ControllerFactory,
    RecordingEvents,
    RecordingNotifier,
    ScriptedAnalyzer,
    controller_settings,
    wait_for,
)
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
FAST = {"interval": "300ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}
BLOCKER = "blocker"
# Created in name order, rolled out in another: neither the cache's order nor the names give the arrival order.
ARRIVALS = ("charlie", "alpha", "bravo")
ANALYSING = ("Progressing", "WaitingPromotion", "Promoting", "Finalising")
LEASE = LeaderSettings(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
POLL = 0.2  # as the run_controller fixture's


def settings(poll_interval: float = POLL) -> ControllerSettings:
    """A controller that lets one canary analyse at a time."""
    return controller_settings(EngineSettings(poll_interval=poll_interval, max_concurrent_canaries=1))


async def create_canaries(cluster: Cluster) -> None:
    for name in (BLOCKER, *sorted(ARRIVALS)):
        await cluster.create("apps", "deployments", deployment(name))
        await cluster.create("flagger.app", "canaries", canary(name, analysis=FAST))


def wait_started(cluster: Cluster, name: str) -> str | None:
    """When the canary began waiting for a slot, as its status says (None while it does not wait)."""
    for cond in cluster.status(name).get("conditions") or []:
        if cond.get("type") == st.HALTED and cond.get("reason") == WAIT_REASON:
            return str(cond.get("lastTransitionTime"))
    return None


async def queue_behind_the_blocker(cluster: Cluster, analyzer: ScriptedAnalyzer) -> dict[str, str]:
    """Hold the blocker in analysis (promotion not approved) and queue ARRIVALS behind it, one per second; the wait
    start each one's status records."""
    analyzer.gates[HookType.CONFIRM_PROMOTION] = False
    for name in (BLOCKER, *ARRIVALS):
        await cluster.wait_phase("Initialized", name)
    await cluster.set_image(NEW_IMAGE, BLOCKER)
    await cluster.wait_phase("WaitingPromotion", BLOCKER)
    starts: dict[str, str] = {}
    for name in ARRIVALS:
        await cluster.set_image(NEW_IMAGE, name)
        await wait_for(lambda n=name: wait_started(cluster, n) is not None, 5,
                       lambda n=name: f"{n} not queued: {cluster.status(n)}")
        starts[name] = str(wait_started(cluster, name))
        # Wait starts are whole seconds (as Kubernetes writes condition times): the next arrival gets a later one.
        began = st.parse_time(starts[name])
        assert began is not None
        await asyncio.sleep(max(0.0, (began + timedelta(seconds=1) - st.now()).total_seconds()))
    return starts


async def admission_order(cluster: Cluster, analyzer: ScriptedAnalyzer) -> list[str]:
    """Approve promotions and record the order in which the waiters start, checking the limit all along."""
    order: list[str] = []

    def observe() -> bool:
        active = [n for n in (BLOCKER, *ARRIVALS) if cluster.status(n).get("phase") in ANALYSING]
        assert len(active) <= 1, active
        order.extend(n for n in active if n != BLOCKER and n not in order)
        return all(cluster.status(n).get("phase") == "Succeeded" for n in (BLOCKER, *ARRIVALS))

    analyzer.gates[HookType.CONFIRM_PROMOTION] = True
    await wait_for(observe, 30, lambda: str({n: cluster.status(n).get("phase") for n in (BLOCKER, *ARRIVALS)}))
    return order


async def test_a_restarted_controller_starts_the_waiters_in_their_arrival_order(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await create_canaries(cluster)
    async with run_controller(max_concurrent_canaries=1):
        starts = await queue_behind_the_blocker(cluster, analyzer)
    async with run_controller(max_concurrent_canaries=1):
        # The new process looks at every waiter again (a few polls); that must not move when each began waiting.
        await asyncio.sleep(3 * POLL)
        assert {n: wait_started(cluster, n) for n in ARRIVALS} == starts
        assert await admission_order(cluster, analyzer) == list(ARRIVALS)


class Replica:
    """A controller replica with leader election, wired as ``flaggerpy run --enable-leader-election`` is: warm
    caches on standby, work only while leading."""

    def __init__(self, kube: KubeClient, analyzer: ScriptedAnalyzer, notifier: RecordingNotifier,
                 events: RecordingEvents, identity: str) -> None:
        self.controller = Controller(kube, analyzer, notifier, events, settings())
        self.elector = LeaderElector(kube, "flaggerpy", NAMESPACE, identity, settings=LEASE,
                                     on_started_leading=self._lead)

    async def _lead(self) -> None:
        await self.controller.resume_handlers()
        self.controller.start_workers()

    async def start(self) -> None:
        await self.controller.start_informers(standby=True)
        self.elector.start()

    async def stop(self) -> None:
        """Finish the steps in flight, then hand the lease over (as a replica's graceful shutdown does)."""
        await self.controller.stop()
        await self.elector.stop()


async def test_after_a_leader_change_the_standby_admits_in_the_same_order(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer, notifier: RecordingNotifier,
    events: RecordingEvents,
) -> None:
    await create_canaries(cluster)
    leader = Replica(kube, analyzer, notifier, events, "leader")
    standby = Replica(kube, analyzer, notifier, events, "standby")
    try:
        await leader.start()
        await asyncio.wait_for(leader.elector.leading.wait(), 5)
        await standby.start()
        await queue_behind_the_blocker(cluster, analyzer)
        assert not standby.elector.leading.is_set()
        await leader.stop()
        await asyncio.wait_for(standby.elector.leading.wait(), 5)
        assert await admission_order(cluster, analyzer) == list(ARRIVALS)
    finally:
        await asyncio.gather(leader.stop(), standby.stop())


async def test_a_freed_slot_wakes_the_next_waiter_without_waiting_for_its_poll(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer, notifier: RecordingNotifier,
    events: RecordingEvents,
) -> None:
    await create_canaries(cluster)
    # Waiters would look again only after a minute: each start below comes from the slot its predecessor freed.
    controller = Controller(kube, analyzer, notifier, events, settings(poll_interval=60.0))
    await controller.start()
    try:
        await queue_behind_the_blocker(cluster, analyzer)
        assert await admission_order(cluster, analyzer) == list(ARRIVALS)
    finally:
        await controller.stop()
