"""The step decisions of an analysis, as pure functions of the canary's plan and its persisted progress.

The reconciler gathers observations (readiness, gates, check results) and asks this module what the next step is;
nothing here does I/O, so every strategy's schedule is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flaggerpy.apis.durations import parse_duration
from flaggerpy.apis.flagger import (
    ANALYSIS_INTERVAL,
    FAILED_CHECKS_THRESHOLD,
    PROGRESS_DEADLINE_SECONDS,
    READY_THRESHOLD,
    TOTAL_WEIGHT,
    Strategy,
)

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary

_INTERVAL_SECONDS = parse_duration(ANALYSIS_INTERVAL, "interval")


@dataclass(frozen=True)
class Plan:
    """The parts of a Canary's spec that drive its schedule, with Flagger's defaults applied."""

    strategy: Strategy
    """CANARY (progressive weights), AB (matched requests go to the canary) or BLUE_GREEN (no traffic until the
    switch; ``mirror`` copies requests meanwhile): never MIRROR, which is BLUE_GREEN with ``mirror`` set."""
    interval: float = _INTERVAL_SECONDS
    threshold: int = FAILED_CHECKS_THRESHOLD
    step_weight: int = 0
    step_weights: tuple[int, ...] = ()
    max_weight: int = TOTAL_WEIGHT
    step_weight_promotion: int = 0
    iterations: int = 0
    mirror: bool = False
    progress_deadline: float = PROGRESS_DEADLINE_SECONDS
    canary_ready_threshold: int = READY_THRESHOLD
    primary_ready_threshold: int = READY_THRESHOLD
    skip_analysis: bool = False

    @property
    def final_weight(self) -> int:
        """The canary weight at which a progressive analysis is complete."""
        return self.step_weights[-1] if self.step_weights else self.max_weight


def plan_of(canary: Canary) -> Plan:
    """Read the schedule out of a parsed Canary (the model applies Flagger's defaults for unset fields)."""
    analysis = canary.analysis
    return Plan(
        strategy=Strategy.BLUE_GREEN if canary.strategy is Strategy.MIRROR else canary.strategy,
        interval=canary.interval_seconds,
        threshold=canary.threshold,
        step_weight=int(analysis.step_weight or 0),
        step_weights=tuple(int(w) for w in (analysis.step_weights or ())),
        max_weight=canary.max_weight,
        step_weight_promotion=int(analysis.step_weight_promotion or 0),
        iterations=canary.iterations,
        mirror=bool(analysis.mirror),
        progress_deadline=float(canary.progress_deadline_seconds),
        canary_ready_threshold=canary.canary_ready_threshold,
        primary_ready_threshold=canary.primary_ready_threshold,
        skip_analysis=canary.skip_analysis,
    )


def next_weight(plan: Plan, current: int) -> int:
    """The canary weight after a passed check at ``current`` (progressive strategy only)."""
    if plan.step_weights:
        for weight in plan.step_weights:
            if weight > current:
                return weight
        return plan.step_weights[-1]
    return min(current + max(plan.step_weight, 1), plan.max_weight)


def analysis_complete(plan: Plan, weight: int, iterations: int) -> bool:
    """Whether the checks have passed often enough to promote."""
    if plan.strategy is Strategy.CANARY:
        return weight >= plan.final_weight
    return iterations >= plan.iterations


def analysis_started(plan: Plan, weight: int, iterations: int) -> bool:
    """Whether traffic has started flowing under analysis (before that, no metric means anything)."""
    if plan.strategy is Strategy.CANARY:
        return weight > 0
    return iterations > 0


def analysis_weight(plan: Plan, weight: int) -> int:
    """The ``status.canaryWeight`` to hold during analysis steps once traffic flows.

    The router derives the route from the persisted status: A/B and blue/green hold 0, as Flagger's status does
    (A/B's matched audience goes to the canary because iterations are counting, see ``routing.drift``; blue/green
    keeps the canary dark, mirrored when asked, until the switch), and the progressive strategy uses the scheduled
    weight.
    """
    if plan.strategy is Strategy.CANARY:
        return weight
    return 0


def promotion_weight(plan: Plan, weight: int) -> int:
    """The canary weight after one gradual-promotion step (``stepWeightPromotion``) from ``weight``; 0 ends it."""
    if plan.step_weight_promotion <= 0:
        return 0
    return max(0, weight - plan.step_weight_promotion)


@dataclass(frozen=True)
class Failure:
    """The outcome of a failed check: the new failedChecks count and whether it ends the analysis."""

    failed_checks: int
    rollback: bool


def on_failed_check(plan: Plan, failed_checks: int) -> Failure:
    """Count one more failed check; at ``threshold`` the canary rolls back."""
    count = failed_checks + 1
    return Failure(count, count >= plan.threshold)


def remaining_delay(plan: Plan, seconds_since_last_step: float | None) -> float:
    """Seconds left before the next analysis step is due (0 when due); a restart resumes the interval."""
    if seconds_since_last_step is None:
        return 0.0
    return max(0.0, plan.interval - seconds_since_last_step)
