"""``-control-loop-interval``: besides their watch events, every cached canary is looked at again each interval, as
Flagger's scheduler syncs its canaries on that period (a lost event then costs at most one interval)."""

from __future__ import annotations

from flaggerpy.canary.controller import Controller
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.reconcile import Result
from tests.integration.conftest import (
    Cluster,
    RecordingEvents,
    RecordingNotifier,
    ScriptedAnalyzer,
    controller_settings,
    wait_for,
)
from tests.manifests import canary, deployment


async def test_idle_canaries_are_looked_at_every_control_loop_interval(cluster: Cluster, kube: KubeClient) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    settings = controller_settings(EngineSettings(poll_interval=0.2), control_loop_interval=0.2)
    controller = Controller(kube, ScriptedAnalyzer(), RecordingNotifier(), RecordingEvents(), settings)
    seen: list[str] = []
    reconcile = controller.reconciler.reconcile

    async def counting(key: str) -> Result:
        seen.append(key)
        return await reconcile(key)

    controller.reconciler.reconcile = counting  # type: ignore[method-assign]
    await controller.start()
    try:
        await cluster.wait_phase("Initialized")
        before = len(seen)
        # Nothing changes any more, so only the control loop brings the canary back.
        await wait_for(lambda: len(seen) >= before + 3, 10, lambda: f"{len(seen) - before} reconciles")
    finally:
        await controller.stop()
    assert set(seen) == {"test/podinfo"}
