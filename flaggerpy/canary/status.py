"""``Canary.status``: the engine's only memory, built and compared as plain dicts.

Flagger's status carries one condition, ``Promoted``, whose reason follows the phase. flaggerpy adds a second one,
``Halted`` (a flaggerpy extension), that says why a canary is not moving right now (route not accepted yet, route
owned by someone else, waiting for a concurrency slot, pods not ready) without overwriting the phase's story, and
a third, ``IgnoredFields``, that lists spec fields Flagger accepts but ignores beside others.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flaggerpy.apis.jsondata import json_copy
from flaggerpy.canary.phases import Phase

PROMOTED = "Promoted"
HALTED = "Halted"
INVALID_SPEC = "InvalidSpec"
IGNORED_FIELDS = "IgnoredFields"

# (condition status, message) of the Promoted condition in each phase, in Flagger's words (``{kind}`` is the target's
# kind); the reason is the phase itself, as in Flagger's MakeStatusConditions. Terminating and Terminated are
# flaggerpy's own texts (Flagger keeps the last condition while it finalises).
_PHASE_CONDITIONS: dict[Phase, tuple[str, str]] = {
    Phase.INITIALIZING: ("Unknown", "New {kind} detected, starting initialization."),
    Phase.INITIALIZED: ("True", "{kind} initialization completed."),
    Phase.WAITING: ("Unknown", "Waiting for approval."),
    Phase.PROGRESSING: ("Unknown", "New revision detected, progressing canary analysis."),
    Phase.WAITING_PROMOTION: ("Unknown", "Waiting for approval."),
    Phase.PROMOTING: ("Unknown", "Canary analysis completed, starting primary rolling update."),
    Phase.FINALISING: ("Unknown", "Canary analysis completed, routing all traffic to primary."),
    Phase.SUCCEEDED: ("True", "Canary analysis completed successfully, promotion finished."),
    Phase.FAILED: ("False", "Canary analysis failed, {kind} scaled to zero."),
    Phase.TERMINATING: ("Unknown", "Canary is being deleted, restoring the target."),
    Phase.TERMINATED: ("False", "Canary deleted, target restored."),
}


def now() -> datetime:
    """The current time in UTC (one place, so tests reason about a single clock)."""
    return datetime.now(UTC)


def timestamp(when: datetime) -> str:
    """RFC 3339 with second precision and a ``Z``, as Kubernetes writes ``metav1.Time``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_timestamp(when: datetime) -> str:
    """RFC 3339 with microseconds: sub-second intervals need a last-step time finer than Kubernetes' seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> datetime | None:
    """A status time (string or datetime) as an aware datetime, or None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_since(value: Any, at: datetime) -> float | None:
    """Seconds between a status time and ``at``; None when the time is unknown."""
    when = parse_time(value)
    return None if when is None else max(0.0, (at - when).total_seconds())


def condition(status: Mapping[str, Any], cond_type: str) -> dict[str, Any] | None:
    """The condition of ``cond_type`` in a status, if present."""
    cond: dict[str, Any]
    for cond in status.get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def set_condition(
    status: dict[str, Any], cond_type: str, cond_status: str, reason: str, message: str, at: datetime
) -> None:
    """Set a condition in place; ``lastTransitionTime`` moves only when the condition's status changes."""
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    stamp = timestamp(at)
    for cond in conditions:
        if cond.get("type") == cond_type:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) == (cond_status, reason, message):
                return
            if cond.get("status") != cond_status:
                cond["lastTransitionTime"] = stamp
            cond.update(status=cond_status, reason=reason, message=message, lastUpdateTime=stamp)
            return
    conditions.append({"type": cond_type, "status": cond_status, "reason": reason, "message": message,
                       "lastUpdateTime": stamp, "lastTransitionTime": stamp})


def clear_condition(status: dict[str, Any], cond_type: str) -> None:
    """Remove a condition in place (no-op when absent)."""
    conditions = status.get("conditions")
    if conditions:
        status["conditions"] = [c for c in conditions if c.get("type") != cond_type]


def note_ignored_fields(status: dict[str, Any], message: str, generation: int | None, at: datetime) -> bool:
    """Record in place which fields this generation of the spec has that are ignored (the ``IgnoredFields``
    condition, a flaggerpy extension); True when that is news to report, False when it was already recorded.

    An empty ``message`` (nothing ignored) removes the condition. The generation lives in the condition so the
    Warning is given once per spec edit, also across restarts and replicas, instead of on every step.
    """
    before = condition(status, IGNORED_FIELDS)
    if not message:
        clear_condition(status, IGNORED_FIELDS)
        return False
    if before is not None and (before.get("message"), before.get("observedGeneration")) == (message, generation):
        return False
    set_condition(status, IGNORED_FIELDS, "True", IGNORED_FIELDS, message, at)
    cond = condition(status, IGNORED_FIELDS)
    if cond is not None and generation is not None:
        cond["observedGeneration"] = generation
    return True


def set_phase(status: dict[str, Any], phase: Phase, at: datetime, kind: str = "Deployment") -> None:
    """Move to ``phase`` in place and set the Promoted condition Flagger shows for it (``kind``: the target's)."""
    status["phase"] = phase.value
    cond_status, message = _PHASE_CONDITIONS[phase]
    set_condition(status, PROMOTED, cond_status, phase.value, message.format(kind=kind), at)


def mark_step(status: dict[str, Any], at: datetime) -> None:
    """Record that a step happened now: the next interval is counted from here, also after a restart."""
    status["lastTransitionTime"] = precise_timestamp(at)


def halt(status: dict[str, Any], reason: str, message: str, at: datetime) -> None:
    """Say why the canary is not moving (the ``Halted`` condition)."""
    set_condition(status, HALTED, "True", reason, message, at)


def unhalt(status: dict[str, Any]) -> None:
    """The canary moves again: drop the ``Halted`` condition."""
    clear_condition(status, HALTED)


def working_copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the canary's status to edit (an empty dict for a new canary)."""
    status: dict[str, Any] = json_copy(dict(obj.get("status") or {}))
    return status


def phase_of(status: Mapping[str, Any]) -> Phase | None:
    """The phase recorded in a status (None for a canary never initialised)."""
    return Phase.parse(status.get("phase"))
