"""Status conditions follow Flagger's conventions and change only when something changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flaggerpy.canary import status as st
from flaggerpy.canary.phases import Phase

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_phase_sets_promoted_condition_in_flaggers_words() -> None:
    s: dict = {}
    st.set_phase(s, Phase.PROGRESSING, T0)
    cond = st.condition(s, st.PROMOTED)
    assert s["phase"] == "Progressing"
    assert cond == {"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                    "message": "New revision detected, progressing canary analysis.",
                    "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    st.set_phase(s, Phase.SUCCEEDED, T0 + timedelta(seconds=5))
    cond = st.condition(s, st.PROMOTED)
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("True", "Succeeded",
                                                                             "2026-01-01T00:00:05Z")


def test_same_condition_is_not_rewritten() -> None:
    s: dict = {}
    st.halt(s, "RouteNotAccepted", "waiting", T0)
    before = [dict(c) for c in s["conditions"]]
    st.halt(s, "RouteNotAccepted", "waiting", T0 + timedelta(seconds=9))
    assert s["conditions"] == before
    st.unhalt(s)
    assert st.condition(s, st.HALTED) is None


def test_last_step_time_round_trips_below_a_second() -> None:
    s: dict = {}
    st.mark_step(s, T0 + timedelta(milliseconds=250))
    assert st.seconds_since(s["lastTransitionTime"], T0 + timedelta(seconds=1)) == 0.75
    assert st.seconds_since(None, T0) is None
    assert st.phase_of({"phase": "Failed"}) is Phase.FAILED
