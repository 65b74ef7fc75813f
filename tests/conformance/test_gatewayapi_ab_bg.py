"""Flagger's test/gatewayapi/test-ab.sh and test-bg.sh (and the tutorial's blue/green with traffic mirroring), each
against Flagger's sequence of webhook calls and Events; plus the blue/green analysis at 100% rolling back, and a
refused promotion that keeps analysing (WaitingPromotion) until a metric fails."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.conformance.conftest import (
    INTERVAL,
    NEW_IMAGE,
    ControllerFactory,
    Hooks,
    Metrics,
    initialized,
    released,
    sent,
)
from tests.conformance.sequences import (
    NAME,
    copying,
    hook,
    iterations,
    new_revision,
    normal,
    promotion_tail,
    starting,
    warning,
)
from tests.integration.conftest import Cluster, wait_for

ERROR_RATE = {"name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "flagger-system"},
              "thresholdRange": {"max": 1}, "interval": "1m"}


AB = [
    *new_revision(),
    *starting(),
    *iterations(3, [hook("rollout")]),                    # runAB: SetRoutes(0, 100) on the matched requests
    hook("rollout"), copying(),                           # runAB: iterations reached → Promote
    *promotion_tail(),
]


async def test_ab_testing(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 10, "iterations": 3,
                "match": [{"headers": {"x-canary": {"exact": "insider"}}}], "metrics": [ERROR_RATE],
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("event")]}
    weights: list[int] = []
    matched: list[list[int]] = []

    async def observe() -> None:
        # Every committed version, in order: polling snapshots can miss a short A/B window on a loaded machine.
        async for change in cluster.cluster.changes([("flagger.app", "canaries"),
                                                     ("gateway.networking.k8s.io", "httproutes")]):
            meta = change.object.get("metadata") or {}
            if change.type == "DELETED" or meta.get("name") != "podinfo":
                continue
            if change.plural == "canaries":
                status = change.object.get("status") or {}
                if status.get("phase") == "Progressing" and status.get("iterations"):
                    weights.append(status.get("canaryWeight", 0))
                continue
            rule = change.object["spec"]["rules"][0]
            if (rule.get("matches") or [{}])[0].get("headers"):
                assert rule["matches"][0]["headers"][0]["name"].lower() == "x-canary"
                matched.append([b["weight"] for b in rule["backendRefs"]])

    observer = asyncio.create_task(observe())
    try:
        async with run_controller():
            await initialized(cluster, hooks, analysis)
            await cluster.set_image(NEW_IMAGE)
            await wait_for(lambda: cluster.status().get("phase") == "Succeeded", 30,
                           lambda: f"status {cluster.status()}")
            await wait_for(lambda: sent(hooks, "Promotion completed!"), 10)
    finally:
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
    assert hooks.timeline() == AB
    assert weights and set(weights) == {0}  # Flagger's status: canaryWeight stays 0 during A/B
    assert [0, 100] in matched  # while the insiders' requests all go to the canary


def blue_green(mirror: bool) -> list[tuple[str, str]]:
    switch = "Stop traffic mirroring and route all traffic to canary" if mirror else "Routing all traffic to canary"
    return [
        *new_revision(),
        *starting([hook("pre-rollout"), normal("Pre-rollout check smoke-test passed")]),
        *iterations(3, [hook("rollout")]),                # runBlueGreen (mirroring from the first iteration)
        hook("rollout"), normal(switch),                  # runBlueGreen: iterations == N → all traffic to canary
        hook("rollout"), copying(),                       # the analysis once more at 100%, then Promote
        *promotion_tail(),
    ]


def bg_analysis(hooks: Hooks, mirror: bool, threshold: int = 5) -> dict[str, Any]:
    return {"interval": INTERVAL, "threshold": threshold, "iterations": 3, "mirror": mirror,
            "metrics": [ERROR_RATE],
            "webhooks": [hooks.hook("pre-rollout", "smoke-test"), hooks.hook("rollout", "load-test"),
                         hooks.hook("event")]}


async def test_blue_green(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    async with run_controller():
        await initialized(cluster, hooks, bg_analysis(hooks, mirror=False))
        await released(cluster, hooks, "Succeeded", "Promotion completed!")
    assert hooks.timeline() == blue_green(mirror=False)


async def test_blue_green_with_mirroring(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    mirrored: list[bool] = []

    def watch() -> bool:
        status = cluster.status()
        if status.get("phase") == "Progressing" and status.get("iterations") and status.get("canaryWeight") == 0:
            route = cluster.get("gateway.networking.k8s.io", "httproutes", "podinfo")
            filters = route["spec"]["rules"][-1].get("filters") or []
            mirrored.append(any(f["type"] == "RequestMirror" for f in filters))
        return status.get("phase") == "Succeeded"

    async with run_controller():
        await initialized(cluster, hooks, bg_analysis(hooks, mirror=True))
        await cluster.set_image(NEW_IMAGE)
        await wait_for(watch, 30, lambda: f"status {cluster.status()}")
        await wait_for(lambda: sent(hooks, "Promotion completed!"), 10)
    assert hooks.timeline() == blue_green(mirror=True)
    # The status is written before the route, so the first snapshots may predate the mirror; once on, it stays on.
    assert True in mirrored and all(mirrored[mirrored.index(True):])


async def test_blue_green_rolls_back_in_the_analysis_at_100_percent(
    cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks, metrics: Metrics
) -> None:
    async with run_controller():
        await initialized(cluster, hooks, bg_analysis(hooks, mirror=False, threshold=1))
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: sent(hooks, "Routing all traffic to canary"), 30)
        metrics.values["error-rate"] = 50.0
        await cluster.wait_phase("Failed")
        await wait_for(lambda: sent(hooks, "Canary failed!"), 10)
    assert hooks.timeline()[-5:] == [
        normal("Routing all traffic to canary"),
        hook("rollout"), warning(f"Halt {NAME} advancement error-rate 50.00 > 1"),   # the tick at 100%
        warning(f"Rolling back {NAME} failed checks threshold reached 1"),             # the next tick
        warning(f"Canary failed! Scaling down {NAME}"),
    ]
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] != NEW_IMAGE
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]


async def test_waiting_promotion_keeps_analysing_and_can_roll_back(
    cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks, metrics: Metrics
) -> None:
    analysis = {"interval": INTERVAL, "threshold": 1, "maxWeight": 20, "stepWeight": 10, "metrics": [ERROR_RATE],
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("confirm-promotion", "approval"),
                             hooks.hook("event")]}
    hooks.refuse.add("confirm-promotion")
    async with run_controller():
        await initialized(cluster, hooks, analysis)
        await cluster.set_image(NEW_IMAGE)
        status = await cluster.wait_phase("WaitingPromotion")
        assert status["canaryWeight"] == 20
        # A few ticks waiting: each one runs the rollout hook and the metrics before asking the gate again.
        await wait_for(lambda: len(hooks.payloads("confirm-promotion")) >= 3, 10)
        metrics.values["error-rate"] = 30.0
        await cluster.wait_phase("Failed")
        await wait_for(lambda: sent(hooks, "Canary failed!"), 10)
    timeline = hooks.timeline()
    start = timeline.index(warning(f"Halt {NAME} advancement waiting for promotion approval approval"))
    waiting = timeline[start + 1:]
    # runConfirmPromotionHooks: the Warning once on entering WaitingPromotion, then every tick analyses first.
    assert waiting[:4] == [hook("rollout"), hook("confirm-promotion"), hook("rollout"), hook("confirm-promotion")]
    assert waiting[-4:] == [
        hook("rollout"), warning(f"Halt {NAME} advancement error-rate 30.00 > 1"),
        warning(f"Rolling back {NAME} failed checks threshold reached 1"),
        warning(f"Canary failed! Scaling down {NAME}"),
    ]
    assert {c.phase for c in hooks.payloads("confirm-promotion")} == {"Progressing"}  # as Flagger sends it
