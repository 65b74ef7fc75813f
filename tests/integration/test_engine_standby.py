"""A standby replica (leader election on, lease held elsewhere) keeps warm caches but queues no work; when it takes
over, every canary is looked at once and releases proceed."""

from __future__ import annotations

from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from tests.integration.conftest import Cluster, RecordingEvents, RecordingNotifier, ScriptedAnalyzer, wait_for
from tests.manifests import canary, deployment


async def test_a_standby_queues_nothing_and_takes_over_with_every_canary(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer, notifier: RecordingNotifier,
    events: RecordingEvents,
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    settings = ControllerSettings(sync_timeout=10.0, engine=EngineSettings(poll_interval=0.2))
    controller = Controller(kube, analyzer, notifier, events, settings)
    await controller.start_informers(standby=True)
    try:
        await cluster.set_image("podinfo:9.9.9")
        await wait_for(lambda: controller.caches.get(res.DEPLOYMENTS, "test", "podinfo") is not None and (
            controller.caches.get(res.DEPLOYMENTS, "test", "podinfo")["spec"]["template"]["spec"]["containers"][0]
            ["image"] == "podinfo:9.9.9"))
        # The cache follows the cluster, but nothing waits to be reconciled by a replica that may not act.
        assert len(controller.queue) == 0
        assert cluster.status().get("phase") is None

        await controller.resume_handlers()
        controller.start_workers()
        await cluster.wait_phase("Initialized")
    finally:
        await controller.stop()
