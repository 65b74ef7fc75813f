"""Two Flagger paths the e2e scripts take in passing: ``skipAnalysis`` (scheduler.go shouldSkipAnalysis) and
``revertOnDeletion`` (finalizer.go finalize, controller.go syncHandler), with Flagger's Events."""

from __future__ import annotations

from tests.conformance.conftest import INTERVAL, ControllerFactory, Hooks, settle
from tests.conformance.sequences import NAME, copying, new_revision, normal
from tests.integration.conftest import Cluster, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"

SKIPPED = [
    *new_revision(),
    copying(),                                                             # shouldSkipAnalysis: Promote
    normal(f"Promotion completed! Canary analysis was skipped for {NAME}"),  # after runPostRolloutHooks
]


async def test_skip_analysis(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("event")]}
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=analysis, skipAnalysis=True))
    async with run_controller():
        await settle(cluster, "Initialized")
        await wait_for(lambda: any(c.message.startswith("Initialization done!") for c in hooks.calls), 10)
        hooks.calls.clear()
        await cluster.set_image(NEW_IMAGE)
        await settle(cluster, "Succeeded")
        await wait_for(lambda: any(c.message.startswith("Promotion completed!") for c in hooks.calls), 10)
    assert hooks.timeline() == SKIPPED
    assert hooks.payloads("rollout") == []


async def test_revert_on_deletion(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "webhooks": [hooks.hook("event")]}
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=analysis, revertOnDeletion=True))
    async with run_controller():
        await settle(cluster, "Initialized")
        await wait_for(lambda: any(c.message.startswith("Initialization done!") for c in hooks.calls), 10)
        hooks.calls.clear()
        await cluster.sb.cluster.delete("flagger.app", "canaries", "test", "podinfo")
        await wait_for(lambda: cluster.get("flagger.app", "canaries", "podinfo") is None, 20)
        await wait_for(lambda: any(c.message.startswith("Terminated") for c in hooks.calls), 10)
    assert hooks.timeline() == [normal(f"Terminating canary {NAME}"), normal(f"Terminated canary {NAME}")]
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] > 0
