"""A slow tenant never starves the others: hooks that hang hold only their own canary's lane, never a worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flaggerpy.analysis.base import HookType, StepContext, WebhookResult
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller
from flaggerpy.kube.api import KubeClient
from tests.integration.conftest import (
    Cluster,
    RecordingEvents,
    RecordingNotifier,
    ScriptedAnalyzer,
    controller_settings,
    wait_for,
)
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
HANGS = {"hostile-gate-1": HookType.CONFIRM_ROLLOUT, "hostile-gate-2": HookType.CONFIRM_ROLLOUT,
         "hostile-rollout": HookType.ROLLOUT}


@dataclass
class HostileHooks(ScriptedAnalyzer):
    """The hostile canaries' hooks never answer (a confirm-rollout gate, a rollout load test); the rest pass."""

    hanging: set[str] = field(default_factory=set)
    answered_hostile: int = 0
    never: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        if HANGS.get(canary.metadata.name) is hook_type:
            self.hanging.add(canary.metadata.name)
            await self.never.wait()
            self.answered_hostile += 1
        return await super().run_webhooks(canary, hook_type, step)


async def test_hanging_hooks_of_other_tenants_never_delay_a_canary_s_steps(cluster: Cluster, kube: KubeClient) -> None:
    analysis = {"interval": "300ms", "threshold": 2, "maxWeight": 50, "stepWeight": 10}
    names = ["podinfo", *HANGS]
    for name in names:
        hooks = [{"name": "hang", "type": str(HANGS[name]), "url": "http://hooks.test/hang"}] if name in HANGS else []
        await cluster.create("apps", "deployments", deployment(name))
        await cluster.create("flagger.app", "canaries", canary(name, analysis={**analysis, "webhooks": hooks}))
    analyzer = HostileHooks()
    # Fewer workers than hostile canaries: with hooks held in workers, the normal canary would get none.
    controller = Controller(kube, analyzer, RecordingNotifier(), RecordingEvents(), controller_settings(threadiness=2))
    await controller.start()
    try:
        for name in names:
            await cluster.wait_phase("Initialized", name)
        for name in HANGS:
            await cluster.set_image(NEW_IMAGE, name)
        await wait_for(lambda: analyzer.hanging == set(HANGS), 20, lambda: f"hanging: {analyzer.hanging}")
        # Every hostile hook hangs now (more of them than workers): the normal canary's release starts.
        await cluster.set_image(NEW_IMAGE, "podinfo")
        weights: list[int] = []

        def normal_canary_promoted() -> bool:
            status = cluster.status("podinfo")
            weight = status.get("canaryWeight", 0)
            if status.get("phase") == "Progressing" and weight and (not weights or weights[-1] != weight):
                weights.append(weight)
            return status.get("phase") == "Succeeded"

        await wait_for(normal_canary_promoted, 30, lambda: f"podinfo {cluster.status('podinfo')}, weights {weights}")
        assert weights == [10, 20, 30, 40, 50], "every weight, in order, while the other tenants' hooks hang"
        assert analyzer.answered_hostile == 0, "the hostile hooks were still hanging"
        assert {cluster.status(name).get("phase") for name in ("hostile-gate-1", "hostile-gate-2")} == {"Initialized"}
        assert cluster.status("hostile-rollout").get("canaryWeight") == 10, "held at its first weight by its hook"
    finally:
        analyzer.never.set()
        await controller.stop()
