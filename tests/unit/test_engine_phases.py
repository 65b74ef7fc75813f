"""The phase transition table matches design.md's state machine, and nothing else is allowed."""

from __future__ import annotations

import itertools

import pytest

from flaggerpy.canary.phases import TRANSITIONS, IllegalTransition, Phase, allowed, check

P = Phase

# design.md "The state machine": every documented move (plus Waiting for confirm-rollout from idle phases and
# a restart of the analysis when the revision changes mid-flight, both described in the same section).
DOCUMENTED = {
    (None, P.INITIALIZING),
    (P.INITIALIZING, P.INITIALIZED),
    (P.INITIALIZED, P.PROGRESSING),
    (P.INITIALIZED, P.WAITING),
    (P.WAITING, P.PROGRESSING),
    (P.WAITING, P.FAILED),
    (P.PROGRESSING, P.PROMOTING),
    (P.PROGRESSING, P.WAITING_PROMOTION),
    (P.PROGRESSING, P.FAILED),
    (P.PROGRESSING, P.WAITING),
    (P.WAITING_PROMOTION, P.PROMOTING),
    (P.WAITING_PROMOTION, P.PROGRESSING),
    (P.WAITING_PROMOTION, P.FAILED),
    (P.PROMOTING, P.FINALISING),
    (P.PROMOTING, P.PROGRESSING),
    (P.PROMOTING, P.FAILED),
    (P.FINALISING, P.SUCCEEDED),
    (P.FINALISING, P.PROGRESSING),
    (P.SUCCEEDED, P.PROGRESSING),
    (P.SUCCEEDED, P.WAITING),
    (P.FAILED, P.PROGRESSING),
    (P.FAILED, P.WAITING),
    (P.TERMINATING, P.TERMINATED),
}
LIVE = set(Phase) - {P.TERMINATING, P.TERMINATED}
EXPECTED = (
    DOCUMENTED
    | {(p, p) for p in Phase}
    | {(p, P.TERMINATING) for p in LIVE}
)


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED, key=str))
def test_documented_transitions_are_allowed(src: Phase | None, dst: Phase) -> None:
    assert allowed(src, dst)
    check(src, dst)


def test_every_other_transition_is_refused() -> None:
    for src, dst in itertools.product([None, *Phase], Phase):
        if (src, dst) not in EXPECTED:
            assert not allowed(src, dst), f"{src} -> {dst} should be illegal"
            with pytest.raises(IllegalTransition, match="illegal canary phase transition"):
                check(src, dst)


def test_terminated_is_final_and_table_covers_every_phase() -> None:
    assert set(TRANSITIONS) == {None, *Phase}
    assert TRANSITIONS[P.TERMINATED] == {P.TERMINATED}


def test_phase_names_are_flaggers() -> None:
    assert [p.value for p in Phase][:9] == [
        "Initializing", "Initialized", "Waiting", "Progressing", "WaitingPromotion",
        "Promoting", "Finalising", "Succeeded", "Failed",
    ]
    assert Phase.parse("") is None
    assert Phase.parse("Bogus") is None
    assert Phase.parse("Succeeded") is P.SUCCEEDED
