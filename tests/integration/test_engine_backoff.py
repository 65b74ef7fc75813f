"""Under a fault that never clears, the controller's requests stay bounded and back off (design.md invariant 8)."""

from __future__ import annotations

from flaggerpy.sandbox import Rule
from tests.integration.conftest import Cluster, ControllerFactory, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
KEY = "test/podinfo"
STATUS = "canaries.flagger.app/status"


async def test_constant_409_on_status_backs_off_per_key_and_recovers(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "10s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
    }))
    counters = cluster.sb.counters
    async with run_controller() as ctl:
        await cluster.wait_phase("Initialized")
        attempts = ctl.reconciler.io.settings.status_write_attempts
        cluster.sb.faults.conflicts.append(Rule(verb="update", resource="canaries/status", rate=1.0))
        puts_before, gets_before = counters.get("update", STATUS), counters.get("get", "canaries.flagger.app")
        await cluster.set_image(NEW_IMAGE)
        # Every status write is refused, so every reconcile of the canary ends in a conflict. Each conflict must
        # count one more requeue (the backoff doubles from 5 ms); before the fix the queue forgot the key after
        # every conflict and the canary was reconciled about 200 times a second.
        requeues: list[int] = []

        def backed_off(times: int) -> bool:
            seen = ctl.queue.num_requeues(KEY)
            if not requeues or requeues[-1] != seen:
                requeues.append(seen)
            return seen >= times

        await wait_for(lambda: backed_off(8), 20, lambda: f"requeues seen {requeues}")
        puts = counters.get("update", STATUS) - puts_before
        gets = counters.get("get", "canaries.flagger.app") - gets_before
        assert requeues == sorted(requeues), f"the backoff was reset under conflicts: {requeues}"
        # 8 backoffs = at most 9 reconciles, each writing its status `attempts` times (and re-reading it in
        # between); a watch event may wake the canary once or twice more (its Deployment was scaled up).
        assert puts <= attempts * (8 + 1 + 2), f"{puts} status writes for 8 backoffs"
        assert gets <= (attempts - 1) * (8 + 1 + 2), f"{gets} canary reads for 8 backoffs"
        cluster.sb.faults.clear()
        # The next try (after the 9th, ~1.3 s backoff) succeeds, and success forgets the backoff.
        await cluster.wait_phase("Progressing")
        await wait_for(lambda: ctl.queue.num_requeues(KEY) == 0, 10, lambda: f"{ctl.queue.num_requeues(KEY)}")
