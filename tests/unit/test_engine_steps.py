"""Schedules of each strategy and the bookkeeping of failed checks and intervals."""

from __future__ import annotations

from flaggerpy.apis.flagger import Strategy
from flaggerpy.canary import steps
from flaggerpy.canary.steps import Plan


def walk(plan: Plan) -> list[int]:
    """The weights a canary that passes every check goes through, up to promotion."""
    weight, seen = 0, []
    while not steps.analysis_complete(plan, weight, 0):
        weight = steps.next_weight(plan, weight)
        seen.append(weight)
    return seen


def test_step_weight_schedule_stops_at_max_weight() -> None:
    assert walk(Plan(Strategy.CANARY, step_weight=10, max_weight=50)) == [10, 20, 30, 40, 50]
    assert walk(Plan(Strategy.CANARY, step_weight=20, max_weight=50)) == [20, 40, 50]


def test_step_weights_schedule_ends_at_last_step() -> None:
    assert walk(Plan(Strategy.CANARY, step_weights=(1, 5, 25, 80))) == [1, 5, 25, 80]


def test_iteration_strategies_complete_by_count_and_route_right() -> None:
    ab = Plan(Strategy.AB, iterations=3)
    assert not steps.analysis_complete(ab, 0, 2) and steps.analysis_complete(ab, 0, 3)
    assert steps.analysis_weight(ab, 0) == 0  # Flagger's status: the matched audience is routed by iterations
    bg = Plan(Strategy.BLUE_GREEN, iterations=2, mirror=True)
    assert steps.analysis_weight(bg, 0) == 0
    assert not steps.analysis_started(bg, 0, 0) and steps.analysis_started(bg, 0, 1)


def test_progressive_weight_is_the_scheduled_one() -> None:
    plan = Plan(Strategy.CANARY, step_weight=10, max_weight=50)
    assert [steps.analysis_weight(plan, w) for w in (0, 10, 50)] == [0, 10, 50]


def test_gradual_promotion() -> None:
    plan = Plan(Strategy.CANARY, step_weight=10, max_weight=50, step_weight_promotion=20)
    assert [steps.promotion_weight(plan, w) for w in (50, 30, 10)] == [30, 10, 0]
    assert steps.promotion_weight(Plan(Strategy.CANARY), 50) == 0


def test_failed_checks_roll_back_at_threshold() -> None:
    plan = Plan(Strategy.CANARY, threshold=3)
    assert steps.on_failed_check(plan, 0) == steps.Failure(1, False)
    assert steps.on_failed_check(plan, 2) == steps.Failure(3, True)


def test_remaining_delay_resumes_interval() -> None:
    plan = Plan(Strategy.CANARY, interval=30)
    assert steps.remaining_delay(plan, None) == 0
    assert steps.remaining_delay(plan, 10) == 20
    assert steps.remaining_delay(plan, 45) == 0
