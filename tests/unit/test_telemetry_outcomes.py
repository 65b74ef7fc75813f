"""Promotions and rollbacks as the controller reports them: once per release, with Flagger's strategy labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest

from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller
from flaggerpy.kube.api import KubeClient
from tests.unit.manifests import canary_object

Outcome = tuple[str, str, str, str, bool]


class Outcomes:
    """A ControllerObserver keeping only the outcomes and statuses it is told about."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.statuses: list[str] = []
        self.weights: list[int] = []

    def record_status(self, target: str, namespace: str, status: Mapping[str, Any]) -> None:
        self.statuses.append(str(status.get("phase")))
        self.weights.append(int(status.get("canaryWeight") or 0))

    def set_canary_total(self, namespace: str, count: int) -> None:
        pass

    def observe_analysis(self, target: str, namespace: str, seconds: float) -> None:
        pass

    def count_outcome(self, target: str, namespace: str, strategy: str, analysis: str, succeeded: bool) -> None:
        self.outcomes.append((target, namespace, strategy, analysis, succeeded))

    def set_queue_depth(self, depth: int) -> None:
        pass

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        pass

    def count_watch_reconnect(self, resource: str, reason: str) -> None:
        pass

    def forget_canary(self, target: str, namespace: str) -> None:
        pass


def write_statuses(analysis: dict[str, Any], phases: list[str], skip: bool = False) -> Outcomes:
    """Feed the controller's status hook the persisted phases of one release, as the engine would."""
    observer = Outcomes()
    # The controller only stores the client until it starts; nothing here talks to a cluster.
    controller = Controller(cast(KubeClient, object()), cast(Any, None), cast(Any, None), cast(Any, None),
                            observer=observer)
    previous = "Succeeded"
    for phase in phases:
        obj = canary_object(analysis, status={"phase": previous})
        obj["spec"]["skipAnalysis"] = skip
        # The hook the engine calls after each status write.
        controller.reconciler.io._on_status(Canary.from_dict(obj), {"phase": phase})
        previous = phase
    return observer


def test_a_promotion_is_counted_once_with_the_canary_strategy() -> None:
    observer = write_statuses({"interval": "1m", "stepWeight": 10, "maxWeight": 50},
                              ["Progressing", "Progressing", "Promoting", "Finalising", "Succeeded", "Succeeded"])
    assert observer.outcomes == [("podinfo", "test", "canary", "completed", True)]
    assert observer.statuses[-1] == "Succeeded"


def test_a_rollback_is_counted_as_a_completed_analysis_failure() -> None:
    observer = write_statuses({"interval": "1m", "iterations": 5, "match": [{"headers": {"x": {"exact": "1"}}}]},
                              ["Progressing", "Failed", "Failed"])
    assert observer.outcomes == [("podinfo", "test", "ab-testing", "completed", False)]


@pytest.mark.parametrize("analysis", [{"interval": "1m", "iterations": 3},
                                      {"interval": "1m", "iterations": 3, "mirror": True}])
def test_skipped_blue_green_promotions_say_so(analysis: dict[str, Any]) -> None:
    observer = write_statuses(analysis, ["Progressing", "Succeeded"], skip=True)
    assert observer.outcomes == [("podinfo", "test", "blue-green", "skipped", True)]


def test_ab_testing_publishes_the_audience_on_the_canary_while_the_status_weight_stays_0() -> None:
    observer = Outcomes()
    controller = Controller(cast(KubeClient, object()), cast(Any, None), cast(Any, None), cast(Any, None),
                            observer=observer)
    obj = canary_object({"interval": "1m", "iterations": 3, "match": [{"headers": {"x": {"exact": "1"}}}]})
    for status in ({"phase": "Progressing", "iterations": 0}, {"phase": "Progressing", "iterations": 1},
                   {"phase": "Finalising", "iterations": 0}):
        controller.reconciler.io._on_status(Canary.from_dict(obj), {**status, "canaryWeight": 0})
    # Flagger's recorder.SetWeight(0, 100) in runAB.
    assert observer.weights == [0, 100, 0]
