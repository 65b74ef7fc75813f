"""Flagger's sequences of webhook calls and Events, as data, for the scenarios of its Gateway API e2e scripts.

Each entry is ("hook", <webhook type>) for a call Flagger makes, or (<Event type>, <message>) for an Event it emits
(with its ``event`` webhook call). The comments name the function of fluxcd/flagger ``pkg/controller`` each part
comes from. Readiness waits are not part of a sequence (their ticks depend on the cluster's timing, in Flagger as
here); where flaggerpy's spacing differs (it moves on as soon as a workload is ready instead of waiting a tick), the
order is still Flagger's.
"""

from __future__ import annotations

Entry = tuple[str, str]
NAME = "podinfo.test"


def normal(message: str) -> Entry:
    """A Normal Event (Flagger's recordEventInfof)."""
    return ("Normal", message)


def warning(message: str) -> Entry:
    """A Warning Event (Flagger's recordEventWarningf)."""
    return ("Warning", message)


def hook(hook_type: str) -> Entry:
    """A webhook call (Flagger's CallWebhook)."""
    return ("hook", hook_type)


def new_revision() -> list[Entry]:
    """checkCanaryStatus: the confirm-rollout gates said yes (runConfirmRolloutHooks), the canary scales up."""
    return [normal(f"New revision detected! Scaling up {NAME}")]


def promotion_tail(post_rollout: list[Entry] | None = None) -> list[Entry]:
    """After Promote: the Promoting tick (runPromotionTrafficShift) and the Finalising tick (advanceCanary), where
    runPostRolloutHooks runs before "Promotion completed!"."""
    return [
        normal("Routing all traffic to primary"),
        *(post_rollout or []),
        normal(f"Promotion completed! Scaling down {NAME}"),
    ]


def copying() -> Entry:
    """runCanary / runAB / runBlueGreen before canaryController.Promote."""
    return normal(f"Copying {NAME} template spec to podinfo-primary.test")


def progressive(weights: list[int], tick: list[Entry], gates_passed: list[Entry]) -> list[Entry]:
    """The ticks of runCanary from the first weight to the last: each analysed tick runs ``tick`` (runAnalysis:
    rollout hooks, then metrics) and ``gates_passed`` (runConfirmTrafficIncreaseHooks), then advances."""
    out: list[Entry] = []
    for index, weight in enumerate(weights):
        if index:
            out += tick
        out += gates_passed
        out.append(normal(f"Advance {NAME} canary weight {weight}"))
    return out


def iterations(count: int, tick: list[Entry]) -> list[Entry]:
    """runAB / runBlueGreen: iteration 1 on the starting tick, then one per analysed tick."""
    out: list[Entry] = []
    for iteration in range(1, count + 1):
        if iteration > 1:
            out += tick
        out.append(normal(f"Advance {NAME} canary iteration {iteration}/{count}"))
    return out


def starting(pre_rollout: list[Entry] | None = None) -> list[Entry]:
    """advanceCanary, first tick with traffic at 0: "Starting canary analysis", then runPreRolloutHooks."""
    return [normal(f"Starting canary analysis for {NAME}"), *(pre_rollout or [])]
