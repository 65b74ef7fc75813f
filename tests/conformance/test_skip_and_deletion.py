"""Two Flagger paths the e2e scripts take in passing: ``skipAnalysis`` (scheduler.go shouldSkipAnalysis) and
``revertOnDeletion`` (finalizer.go finalize, controller.go syncHandler), with Flagger's Events."""

from __future__ import annotations

from tests.conformance.conftest import INTERVAL, ControllerFactory, Hooks, initialized, released, sent
from tests.conformance.sequences import NAME, copying, new_revision, normal
from tests.integration.conftest import Cluster, wait_for

SKIPPED = [
    *new_revision(),
    copying(),                                                             # shouldSkipAnalysis: Promote
    normal(f"Promotion completed! Canary analysis was skipped for {NAME}"),  # after runPostRolloutHooks
]


async def test_skip_analysis(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("event")]}
    async with run_controller():
        await initialized(cluster, hooks, analysis, skipAnalysis=True)
        await released(cluster, hooks, "Succeeded", "Promotion completed!")
    assert hooks.timeline() == SKIPPED
    assert hooks.payloads("rollout") == []


async def test_revert_on_deletion(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "webhooks": [hooks.hook("event")]}
    async with run_controller():
        await initialized(cluster, hooks, analysis, revertOnDeletion=True)
        await cluster.sb.cluster.delete("flagger.app", "canaries", "test", "podinfo")
        await wait_for(lambda: cluster.get("flagger.app", "canaries", "podinfo") is None, 20)
        await wait_for(lambda: sent(hooks, "Terminated"), 10)
    assert hooks.timeline() == [normal(f"Terminating canary {NAME}"), normal(f"Terminated canary {NAME}")]
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] > 0
