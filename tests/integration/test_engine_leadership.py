"""After leadership is lost, no write goes out (design.md invariant 9), not even from a step already in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flaggerpy.analysis.base import HookType, StepContext, WebhookResult
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.settings import LeaderSettings
from tests.integration.conftest import (
    Cluster,
    RecordingEvents,
    RecordingNotifier,
    ScriptedAnalyzer,
    controller_settings,
    wait_for,
)
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
# A long lease: once the lease is taken over, this replica cannot win it back while the test looks.
LEADER = LeaderSettings(lease_duration=30.0, renew_deadline=1.0, retry_period=0.2)
READS = frozenset({"get", "list", "watch"})


@dataclass
class HangingPreRollout(ScriptedAnalyzer):
    """Every pre-rollout hook hangs until ``release`` is set: a step in flight when leadership goes."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    returned: int = 0

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        if hook_type is HookType.PRE_ROLLOUT:
            self.entered.set()
            await self.release.wait()
            self.returned += 1
            return [WebhookResult("pre", hook_type, True)]
        return await super().run_webhooks(canary, hook_type, step)


def writes(cluster: Cluster) -> dict[str, dict[str, int]]:
    """The sandbox's counters of every write but the Lease's (the election itself)."""
    return {resource: {verb: n for verb, n in verbs.items() if verb not in READS}
            for resource, verbs in cluster.sb.counters.snapshot().items() if not resource.startswith("leases")}


async def test_a_leader_whose_lease_is_taken_over_writes_nothing_after_its_renew_deadline(
    cluster: Cluster, kube: KubeClient
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
        "webhooks": [{"name": "smoke", "type": "pre-rollout", "url": "http://hooks.test/smoke"}],
    }))
    analyzer = HangingPreRollout()
    controller = Controller(kube, analyzer, RecordingNotifier(), RecordingEvents(), controller_settings())
    elector = LeaderElector(kube, "flaggerpy", NAMESPACE, identity="replica-a", settings=LEADER,
                            on_started_leading=controller.start_workers)
    kube.set_write_fence(elector.write_fence())
    await controller.start_informers()
    elector.start()
    try:
        await cluster.wait_phase("Initialized")
        await cluster.set_image(NEW_IMAGE)
        await asyncio.wait_for(analyzer.entered.wait(), 20)
        # Another replica takes the Lease over (written straight into the store, as its own renewals would be).
        lease = cluster.get("coordination.k8s.io", "leases", "flaggerpy")
        assert lease is not None and lease["spec"]["holderIdentity"] == "replica-a"
        lease["spec"] = {**lease["spec"], "holderIdentity": "replica-b", "leaseTransitions": 1}
        await cluster.update("coordination.k8s.io", "leases", lease)
        await wait_for(lambda: not elector.is_leader, 10, lambda: "still leading after the renew deadline")
        before = writes(cluster)
        # The step in flight goes on: its pre-rollout hook answers now, and the step would advance the weight; it
        # is taken again (and refused again) with the canary's backoff.
        analyzer.release.set()
        await wait_for(lambda: analyzer.returned >= 1 and (controller.queue.num_requeues("test/podinfo") >= 2
                                                           or writes(cluster) != before), 10,
                       lambda: f"hook returned {analyzer.returned}, requeues "
                               f"{controller.queue.num_requeues('test/podinfo')}")
        assert writes(cluster) == before, "a write went out after the renew deadline"
        assert cluster.status().get("canaryWeight", 0) == 0
    finally:
        analyzer.release.set()
        await controller.stop()
        await elector.stop()
