"""The step decisions of an analysis, as pure functions of the canary's plan and its persisted progress.

The reconciler gathers observations (readiness, gates, check results) and asks this module what the next step is;
nothing here does I/O, so every strategy's schedule is tested on its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flaggerpy.apis.durations import parse_duration

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary

DEFAULT_INTERVAL_SECONDS = 60.0
DEFAULT_THRESHOLD = 1
DEFAULT_MAX_WEIGHT = 100
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_READY_THRESHOLD = 100


class Strategy(enum.StrEnum):
    """How traffic moves during analysis."""

    CANARY = "canary"  # progressive weights
    AB = "ab-testing"  # matched requests go to the canary; iterations count
    BLUE_GREEN = "blue-green"  # no traffic until the switch; iterations count


@dataclass(frozen=True)
class Plan:
    """The parts of a Canary's spec that drive its schedule, with Flagger's defaults applied."""

    strategy: Strategy
    interval: float = DEFAULT_INTERVAL_SECONDS
    threshold: int = DEFAULT_THRESHOLD
    step_weight: int = 0
    step_weights: tuple[int, ...] = ()
    max_weight: int = DEFAULT_MAX_WEIGHT
    step_weight_promotion: int = 0
    iterations: int = 0
    mirror: bool = False
    progress_deadline: float = DEFAULT_PROGRESS_DEADLINE_SECONDS
    canary_ready_threshold: int = DEFAULT_READY_THRESHOLD
    primary_ready_threshold: int = DEFAULT_READY_THRESHOLD
    skip_analysis: bool = False

    @property
    def final_weight(self) -> int:
        """The canary weight at which a progressive analysis is complete."""
        return self.step_weights[-1] if self.step_weights else self.max_weight


def _seconds(value: Any, default: float, field: str) -> float:
    """A duration the model gives as seconds, a timedelta or a string, with the default for unset values."""
    if value is None or value == "":
        return default
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    if isinstance(value, int | float):
        return float(value)
    return float(parse_duration(str(value), field))


def plan_of(canary: Canary) -> Plan:
    """Read the schedule out of a parsed Canary (Flagger's defaults for unset fields)."""
    analysis = canary.spec.analysis
    iterations = int(getattr(analysis, "iterations", None) or 0)
    match = getattr(analysis, "match", None)
    if match:
        strategy = Strategy.AB
    elif iterations > 0 and not (analysis.step_weight or analysis.step_weights):
        strategy = Strategy.BLUE_GREEN
    else:
        strategy = Strategy.CANARY
    return Plan(
        strategy=strategy,
        interval=_seconds(getattr(analysis, "interval", None), DEFAULT_INTERVAL_SECONDS, "spec.analysis.interval"),
        threshold=int(analysis.threshold or DEFAULT_THRESHOLD),
        step_weight=int(analysis.step_weight or 0),
        step_weights=tuple(int(w) for w in (analysis.step_weights or ())),
        max_weight=int(analysis.max_weight or DEFAULT_MAX_WEIGHT),
        step_weight_promotion=int(getattr(analysis, "step_weight_promotion", None) or 0),
        iterations=iterations,
        mirror=bool(getattr(analysis, "mirror", False)),
        progress_deadline=float(canary.spec.progress_deadline_seconds or DEFAULT_PROGRESS_DEADLINE_SECONDS),
        canary_ready_threshold=int(getattr(analysis, "canary_ready_threshold", None) or DEFAULT_READY_THRESHOLD),
        primary_ready_threshold=int(getattr(analysis, "primary_ready_threshold", None) or DEFAULT_READY_THRESHOLD),
        skip_analysis=bool(canary.spec.skip_analysis),
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


def analysis_routes(plan: Plan, weight: int) -> tuple[int, int, bool]:
    """(primary weight, canary weight, mirror) to apply during analysis at ``weight``.

    A/B sends matched requests 100% to the canary (the router keeps the default rule on the primary); blue/green
    keeps the canary dark, optionally mirrored; the progressive strategy splits by weight, mirroring when asked.
    """
    if plan.strategy is Strategy.AB:
        return 0, 100, False
    if plan.strategy is Strategy.BLUE_GREEN:
        return 100, 0, plan.mirror
    return 100 - weight, weight, plan.mirror and weight > 0


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
