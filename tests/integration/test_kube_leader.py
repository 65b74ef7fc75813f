"""Leader election between two electors on one Lease in the sandbox, with a two-leaders check at every tick."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.resources import LEASES
from flaggerpy.kube.settings import ClientSettings, LeaderSettings
from flaggerpy.sandbox import Rule, Sandbox

SHORT = LeaderSettings(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
CLIENT = ClientSettings(connect_timeout=1.0, read_timeout=1.0, backoff_initial=0.01, backoff_max=0.05)
TICK = 0.01
# Request round trips and event-loop scheduling on a loaded 2-core machine.
SLACK = 0.5


class Monitor:
    """Samples every elector at every tick and records any moment with two leaders."""

    def __init__(self, *electors: LeaderElector) -> None:
        self.electors = electors
        self.violations: list[list[str]] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            leaders = [e.identity for e in self.electors if e.is_leader]
            if len(leaders) > 1:
                self.violations.append(leaders)
            await asyncio.sleep(TICK)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Monitor]:
        self.task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Sandbox, KubeClient]]:
    async with (
        Sandbox(workloads=False, dataplane=False) as sb,
        KubeClient(str(sb.kubeconfig_path), settings=CLIENT) as kube,
    ):
        yield sb, kube


async def wait_leading(elector: LeaderElector, within: float) -> float:
    """Seconds until ``elector`` leads; fails the test if it takes longer than ``within``."""
    start = time.monotonic()
    await asyncio.wait_for(elector.leading.wait(), within)
    return time.monotonic() - start


async def test_killed_leader_is_replaced_within_the_lease_duration() -> None:
    async with cluster() as (_, kube):
        a = LeaderElector(kube, "flaggerpy", "default", "a", settings=SHORT)
        b = LeaderElector(kube, "flaggerpy", "default", "b", settings=SHORT)
        async with Monitor(a, b).watching() as monitor:
            task_a = a.start()
            await wait_leading(a, 2)
            b.start()
            await asyncio.sleep(SHORT.lease_duration)
            assert a.is_leader and not b.is_leader, "a renewing leader keeps the lease"
            task_a.cancel()
            await asyncio.gather(task_a, return_exceptions=True)
            assert not a.is_leader
            took = await wait_leading(b, SHORT.lease_duration + SHORT.retry_period + SLACK)
            assert took >= SHORT.lease_duration - SHORT.renew_deadline, "b must wait for the unreleased lease"
            await b.stop()
        assert monitor.violations == []
        lease = await kube.get(LEASES, "flaggerpy", "default")
        assert lease["spec"]["leaseTransitions"] == 1
        assert lease["spec"]["holderIdentity"] == "", "b released the lease on its graceful stop"


async def test_graceful_stop_releases_and_the_standby_takes_over_within_a_retry_period() -> None:
    stopped: list[str] = []
    async with cluster() as (_, kube):
        a = LeaderElector(kube, "ctl", "default", "a", settings=SHORT, on_stopped_leading=lambda: stopped.append("a"))
        b = LeaderElector(kube, "ctl", "default", "b", settings=SHORT)
        async with Monitor(a, b).watching() as monitor:
            a.start()
            await wait_leading(a, 2)
            b.start()
            await asyncio.sleep(3 * SHORT.retry_period)
            await a.stop()
            assert stopped == ["a"]
            await wait_leading(b, SHORT.retry_period + SLACK)
            lease = await kube.get(LEASES, "ctl", "default")
            assert lease["spec"]["holderIdentity"] == "b"
            assert lease["spec"]["leaseTransitions"] == 1
            await b.stop()
        assert monitor.violations == []


async def test_leader_that_cannot_renew_steps_down_before_anyone_else_may_lead() -> None:
    async with cluster() as (sb, kube):
        a = LeaderElector(kube, "ctl", "default", "a", settings=SHORT)
        b = LeaderElector(kube, "ctl", "default", "b", settings=SHORT)
        async with Monitor(a, b).watching() as monitor:
            a.start()
            await wait_leading(a, 2)
            b.start()
            # The API server stops accepting lease writes from a (and b): a must give up within the renew deadline.
            sb.faults.errors.append(Rule(verb="update", resource="leases", rate=1.0, code=503))
            start = time.monotonic()
            for _ in range(int((SHORT.renew_deadline + SLACK) / TICK)):
                if not a.is_leader:
                    break
                await asyncio.sleep(TICK)
            assert not a.is_leader
            assert time.monotonic() - start <= SHORT.renew_deadline + SLACK
            sb.faults.clear()
            # Once writes work again exactly one of them leads (a may renew its own record, b may take it over).
            waiters = [asyncio.ensure_future(e.leading.wait()) for e in (a, b)]
            done, pending = await asyncio.wait(
                waiters, timeout=SHORT.lease_duration + SHORT.retry_period + SLACK, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            assert done, "someone leads again once the API server accepts lease writes"
            await asyncio.gather(a.stop(), b.stop())
        assert monitor.violations == []
