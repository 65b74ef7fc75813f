"""Leader election without reads: the leader renews by replacing the Lease its last write returned, a standby
follows the Lease through a watch. A write by anyone else makes the leader's renewal fail once (409); it then
keeps leading (a foreign edit of the object) or steps down (someone else holds the lease)."""

from __future__ import annotations

import asyncio

from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.resources import LEASES
from flaggerpy.sandbox.apiserver.faults import Counters
from tests.integration.test_kube_leader import SHORT, SLACK, cluster, wait_leading


async def renewals(counters: Counters, count: int) -> None:
    """Wait until ``count`` more lease updates were served."""
    start = counters.get("update", "leases")
    async with asyncio.timeout(count * SHORT.retry_period + 2 * SLACK):
        while counters.get("update", "leases") < start + count:  # noqa: ASYNC110 (the sandbox counts requests)
            await asyncio.sleep(SHORT.retry_period / 4)


async def test_renewals_and_standbys_make_no_reads_even_after_a_foreign_edit() -> None:
    async with cluster() as (sb, kube):
        leader = LeaderElector(kube, "ctl", "default", "a", settings=SHORT)
        standby = LeaderElector(kube, "ctl", "default", "b", settings=SHORT)
        leader.start()
        await wait_leading(leader, 2)
        standby.start()
        # Until its watch has listed, a standby reads the Lease; its watch request comes after that list, so two
        # lease watches served (the leader's and the standby's) is the steady state, however slow the machine.
        async with asyncio.timeout(5):
            while sb.counters.get("watch", "leases") < 2:  # noqa: ASYNC110 (the sandbox counts requests)
                await asyncio.sleep(0.01)
        reads = sb.counters.get("get", "leases")
        await renewals(sb.counters, 5)
        assert sb.counters.get("get", "leases") == reads, "steady-state renewals and standbys read nothing"
        assert not standby.is_leader

        lease = await kube.get(LEASES, "ctl", "default")  # someone (kubectl) labels the Lease
        lease["metadata"]["labels"] = {"team": "ops"}
        await kube.replace(LEASES, lease)
        reads = sb.counters.get("get", "leases")
        await renewals(sb.counters, 3)
        # The 409 is resolved from the watched Lease; only if the watch lagged behind the edit is it read once.
        assert sb.counters.get("get", "leases") <= reads + 1
        assert leader.is_leader and not standby.is_leader
        current = await kube.get(LEASES, "ctl", "default")
        assert current["spec"]["holderIdentity"] == "a"
        assert current["metadata"]["labels"] == {"team": "ops"}
        await asyncio.gather(leader.stop(), standby.stop())


async def test_a_leader_whose_lease_was_taken_steps_down() -> None:
    async with cluster() as (_, kube):
        lost = asyncio.Event()
        leader = LeaderElector(kube, "ctl", "default", "a", settings=SHORT, on_stopped_leading=lost.set)
        leader.start()
        await wait_leading(leader, 2)
        lease = await kube.get(LEASES, "ctl", "default")
        lease["spec"]["holderIdentity"] = "intruder"
        await kube.replace(LEASES, lease)
        await asyncio.wait_for(lost.wait(), SHORT.renew_deadline + SLACK)
        assert not leader.is_leader
        assert (await kube.get(LEASES, "ctl", "default"))["spec"]["holderIdentity"] == "intruder"
        await leader.stop()
