"""Manual requests (promote, abort, retry) as pure decisions over a Canary object.

``flaggerpy promote|abort|retry`` write a request id into an annotation (:mod:`flaggerpy.apis.annotations`); the
reconciler asks :func:`decide` which request is pending and whether it applies to the canary's phase, acts on it,
and records the id as handled in the status it persists in the same step, so a request takes effect exactly once,
also across restarts and leader changes. A request that does not apply to the phase is recorded as ``Ignored`` with
a Warning Event: left pending, it would fire unexpectedly during some later release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flaggerpy.apis.annotations import Action, pending
from flaggerpy.canary.phases import Phase

# Abort first: when someone asks both to abort and to promote, the safe request wins.
PRIORITY = (Action.ABORT, Action.PROMOTE, Action.RETRY)

APPLIES_IN: Mapping[Action, frozenset[Phase]] = {
    # Promotion skips the remaining analysis of a canary that runs; in Waiting the canary was never scaled up, so
    # there is nothing to promote yet.
    Action.PROMOTE: frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION}),
    # Not while Promoting: the primary already runs part of the new spec, and after Failed it must run the last
    # promoted one (design.md invariant 3).
    Action.ABORT: frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION}),
    Action.RETRY: frozenset({Phase.FAILED}),
}

# The phase each request moves the canary to.
NEXT_PHASE: Mapping[Action, Phase] = {
    Action.PROMOTE: Phase.PROMOTING,
    Action.ABORT: Phase.FAILED,
    Action.RETRY: Phase.PROGRESSING,
}

OUTCOME: Mapping[Action, str] = {Action.PROMOTE: "Promoted", Action.ABORT: "Aborted", Action.RETRY: "Retried"}
IGNORED = "Ignored"


@dataclass(frozen=True)
class Decision:
    """What to do about one pending request."""

    action: Action
    request_id: str
    applies: bool
    """False: record the request as Ignored and warn, change nothing else."""
    next_phase: Phase | None
    """The phase to move to when the request applies."""
    message: str
    """The Event message, in Flagger's ``<target>.<namespace>`` spelling."""

    @property
    def outcome(self) -> str:
        """The reason to record with the handled id: Promoted, Aborted, Retried or Ignored."""
        return OUTCOME[self.action] if self.applies else IGNORED


def applicable_phases(action: Action) -> list[str]:
    """The phases in which ``action`` applies, in the order of the state machine (for error messages)."""
    return [p.value for p in Phase if p in APPLIES_IN[action]]


def applies(action: Action, phase: Phase | None) -> bool:
    """Whether ``action`` can act on a canary in ``phase``."""
    return phase is not None and phase in APPLIES_IN[action]


def decide(obj: Mapping[str, Any]) -> Decision | None:
    """The pending manual request the reconciler should handle now, or None when there is none."""
    requests = pending(obj)
    if not requests:
        return None
    action = next(a for a in PRIORITY if a in requests)
    status = obj.get("status") or {}
    phase = Phase.parse(status.get("phase"))
    meta = obj.get("metadata") or {}
    target = ((obj.get("spec") or {}).get("targetRef") or {}).get("name") or meta.get("name", "")
    name = f"{target}.{meta.get('namespace', '')}"
    rid = requests[action]
    if not applies(action, phase):
        where = ", ".join(applicable_phases(action))
        return Decision(action, rid, False, None,
                        f"Ignoring manual {action.value} of {name} (request {rid}): phase is "
                        f"{phase.value if phase else 'not set'}, {action.value} applies in {where}")
    messages = {
        Action.PROMOTE: f"Manual promotion of {name} requested (request {rid}): skipping the remaining analysis",
        Action.ABORT: f"Rolling back {name} manual abort requested (request {rid})",
        Action.RETRY: f"Manual retry of {name} requested (request {rid}): re-running the analysis",
    }
    return Decision(action, rid, True, NEXT_PHASE[action], messages[action])
