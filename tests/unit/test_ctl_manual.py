"""Manual requests: annotations written by the CLI, handled ids in status, and which request the engine acts on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flaggerpy.apis.annotations import (
    HANDLED_CONDITION,
    Action,
    handled,
    new_request_id,
    pending,
    record_handled,
    requested,
)
from flaggerpy.canary import manual
from flaggerpy.canary.phases import Phase, allowed

AT = datetime(2026, 11, 22, 1, 50, tzinfo=UTC)


def canary(phase: str | None, **annotations: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "podinfo", "namespace": "test",
                     "annotations": {f"flaggerpy.io/{k}": v for k, v in annotations.items()}},
        "spec": {"targetRef": {"name": "podinfo"}},
        "status": {"phase": phase} if phase else {},
    }
    return obj


def test_request_ids_are_unique_and_dated() -> None:
    first, second = new_request_id(AT), new_request_id(AT)
    assert first != second
    assert first.startswith("20261122T015000Z-")
    assert " " not in first


def test_annotations_are_read_by_action_and_empty_values_ignored() -> None:
    obj = canary("Progressing", promote="a1", abort="  ", retry="r1")
    obj["metadata"]["annotations"]["example.com/other"] = "x"
    assert requested(obj) == {Action.PROMOTE: "a1", Action.RETRY: "r1"}
    assert Action.PROMOTE.annotation == "flaggerpy.io/promote"


def test_a_handled_request_is_not_pending_and_a_new_id_is() -> None:
    obj = canary("Progressing", promote="p1", abort="a1")
    record_handled(obj["status"], Action.PROMOTE, "p1", "Promoted", AT)
    assert pending(obj) == {Action.ABORT: "a1"}
    record_handled(obj["status"], Action.ABORT, "a1", "Aborted", AT)
    assert pending(obj) == {}
    assert handled(obj["status"]) == {Action.PROMOTE: "p1", Action.ABORT: "a1"}
    obj["metadata"]["annotations"]["flaggerpy.io/promote"] = "p2"
    assert pending(obj) == {Action.PROMOTE: "p2"}


def test_record_handled_keeps_one_condition_and_other_conditions() -> None:
    status: dict[str, Any] = {"conditions": [{"type": "Promoted", "status": "Unknown"}]}
    record_handled(status, Action.RETRY, "r1", "Retried", AT)
    record_handled(status, Action.RETRY, "r2", "Retried", AT)
    types = [c["type"] for c in status["conditions"]]
    assert types == ["Promoted", HANDLED_CONDITION]
    assert handled(status) == {Action.RETRY: "r2"}


def test_nothing_pending_means_no_decision() -> None:
    assert manual.decide(canary("Progressing")) is None


@pytest.mark.parametrize(("action", "phase", "next_phase"), [
    (Action.PROMOTE, "Progressing", Phase.PROMOTING),
    (Action.PROMOTE, "WaitingPromotion", Phase.PROMOTING),
    (Action.ABORT, "Progressing", Phase.FAILED),
    (Action.ABORT, "Waiting", Phase.FAILED),
    (Action.ABORT, "WaitingPromotion", Phase.FAILED),
    (Action.RETRY, "Failed", Phase.PROGRESSING),
])
def test_applicable_requests_move_to_their_phase(action: Action, phase: str, next_phase: Phase) -> None:
    decision = manual.decide(canary(phase, **{action.value: "id-1"}))
    assert decision is not None and decision.applies
    assert decision.next_phase is next_phase
    assert decision.request_id == "id-1"
    assert "podinfo.test" in decision.message
    # The move must be one the state machine allows.
    assert allowed(Phase(phase), next_phase)


@pytest.mark.parametrize(("action", "phase"), [
    (Action.PROMOTE, "Initialized"), (Action.PROMOTE, "Succeeded"), (Action.PROMOTE, "Failed"),
    (Action.PROMOTE, "Promoting"), (Action.ABORT, "Promoting"), (Action.ABORT, "Succeeded"),
    (Action.RETRY, "Progressing"), (Action.RETRY, "Succeeded"), (Action.PROMOTE, None),
])
def test_requests_that_do_not_apply_are_ignored_with_a_reason(action: Action, phase: str | None) -> None:
    decision = manual.decide(canary(phase, **{action.value: "id-1"}))
    assert decision is not None and not decision.applies
    assert decision.outcome == "Ignored"
    assert decision.next_phase is None
    assert f"{action.value} applies in" in decision.message


def test_abort_wins_over_promote() -> None:
    decision = manual.decide(canary("Progressing", promote="p1", abort="a1"))
    assert decision is not None and decision.action is Action.ABORT and decision.outcome == "Aborted"
