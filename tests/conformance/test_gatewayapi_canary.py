"""Flagger's test/gatewayapi/test-canary.sh: a progressive canary promoted (every webhook type on the way), then a
release rolled back by a failing metric; each against Flagger's sequence of webhook calls and Events."""

from __future__ import annotations

from tests.conformance.conftest import INTERVAL, NEW_IMAGE, ControllerFactory, Hooks, Metrics, initialized, released
from tests.conformance.sequences import (
    NAME,
    copying,
    hook,
    new_revision,
    normal,
    progressive,
    promotion_tail,
    starting,
    warning,
)
from tests.integration.conftest import Cluster, wait_for

METRICS = [
    {"name": "error-rate", "templateRef": {"name": "error-rate", "namespace": "flagger-system"},
     "thresholdRange": {"max": 1}, "interval": "1m"},
    {"name": "latency", "templateRef": {"name": "latency", "namespace": "flagger-system"},
     "thresholdRange": {"max": 0.5}, "interval": "30s"},
]


def passed(hook_type: str) -> list[tuple[str, str]]:
    """The call of a gate that says yes and its Event (scheduler_hooks.go)."""
    label = hook_type.capitalize()
    return [hook(hook_type), normal(f"{label} check {hook_type} passed")]


# Every gate of a release, in the order Flagger asks them (the script itself has only the rollout hook).
PROMOTION = [
    *passed("confirm-rollout"),                                   # runConfirmRolloutHooks
    *new_revision(),
    *starting(passed("pre-rollout")),                             # runPreRolloutHooks
    *progressive([10, 20, 30, 40, 50], [hook("rollout")],         # runAnalysis
                 passed("confirm-traffic-increase")),             # runConfirmTrafficIncreaseHooks
    hook("rollout"),                                              # runAnalysis at maxWeight
    *passed("confirm-traffic-increase"),                          # asked at maxWeight too (nextStepWeight > 0)
    *passed("confirm-promotion"),                                 # runCanary → runConfirmPromotionHooks
    copying(),
    *promotion_tail(passed("post-rollout")),                      # runPostRolloutHooks before the Event
]

ROLLBACK = [
    *new_revision(),
    *starting(),
    normal(f"Advance {NAME} canary weight 10"),                   # runCanary: no analysis before traffic flows
    hook("rollout"), warning(f"Halt {NAME} advancement error-rate 100.00 > 1"),   # runMetricChecks, failedChecks 1
    hook("rollout"), warning(f"Halt {NAME} advancement error-rate 100.00 > 1"),   # failedChecks 2
    # The next tick: failedChecks >= threshold → rollback (no analysis on that tick).
    warning(f"Rolling back {NAME} failed checks threshold reached 2"),
    warning(f"Canary failed! Scaling down {NAME}"),
]


async def test_canary_promotion(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks) -> None:
    analysis = {"interval": INTERVAL, "threshold": 15, "maxWeight": 50, "stepWeight": 10, "metrics": METRICS,
                "webhooks": [hooks.hook(t) for t in ("confirm-rollout", "pre-rollout", "rollout",
                                                     "confirm-traffic-increase", "confirm-promotion",
                                                     "post-rollout", "event")]}
    async with run_controller():
        await initialized(cluster, hooks, analysis)
        await released(cluster, hooks, "Succeeded", "Promotion completed!")
    assert hooks.timeline() == PROMOTION
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    # Payloads: the phase Flagger sends to each hook type, one checksum for the whole release.
    phases = {c.type: c.phase for c in hooks.calls if c.type != "event"}
    assert phases == {"confirm-rollout": "Initialized", "pre-rollout": "Progressing", "rollout": "Progressing",
                      "confirm-traffic-increase": "Progressing", "confirm-promotion": "Progressing",
                      "post-rollout": "Succeeded"}
    analysed = hooks.calls[next(i for i, c in enumerate(hooks.calls) if c.message.startswith("Starting")):]
    assert len({c.checksum for c in analysed}) == 1
    promoted = next(c for c in cluster.status()["conditions"] if c["type"] == "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("True", "Succeeded")


async def test_canary_rollback(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks,
                               metrics: Metrics) -> None:
    analysis = {"interval": INTERVAL, "threshold": 2, "maxWeight": 50, "stepWeight": 10, "metrics": METRICS,
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("event")]}
    async with run_controller():
        await initialized(cluster, hooks, analysis)
        metrics.values["error-rate"] = 100.0  # the script's hey against /status/500
        status = await released(cluster, hooks, "Failed", "Canary failed!")
    assert hooks.timeline() == ROLLBACK
    assert (status["canaryWeight"], status["failedChecks"]) == (0, 0)  # SyncStatus resets them on Failed
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    promoted = next(c for c in status["conditions"] if c["type"] == "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "Failed")


async def test_refused_traffic_increase_repeats_the_first_tick_until_approved(
    cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks
) -> None:
    analysis = {"interval": INTERVAL, "threshold": 5, "maxWeight": 20, "stepWeight": 10,
                "webhooks": [hooks.hook("confirm-traffic-increase", "gate"), hooks.hook("event")]}
    hooks.refuse.add("confirm-traffic-increase")
    async with run_controller():
        await initialized(cluster, hooks, analysis)
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: len(hooks.payloads("confirm-traffic-increase")) >= 2, 10)
        hooks.refuse.clear()
        await cluster.wait_phase("Succeeded", within=30)
    timeline = hooks.timeline()
    refused = [normal(f"Starting canary analysis for {NAME}"), hook("confirm-traffic-increase"),
               warning(f"Halt {NAME} advancement waiting for traffic increase approval gate")]
    start = len(new_revision())
    assert timeline[:start] == new_revision()
    # runConfirmTrafficIncreaseHooks said no: the whole first tick again on the next one, until it says yes.
    count = 0
    while timeline[start:start + 3] == refused:
        start, count = start + 3, count + 1
    assert count >= 2
    assert timeline[start:start + 4] == [normal(f"Starting canary analysis for {NAME}"),
                                         hook("confirm-traffic-increase"),
                                         normal("Confirm-traffic-increase check gate passed"),
                                         normal(f"Advance {NAME} canary weight 10")]
