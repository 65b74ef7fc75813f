"""Manual requests to the controller, written by ``flaggerpy promote|abort|retry`` as annotations on a Canary.

The annotation's value is a request id. The controller records the id it handled in the Canary's status (a
``ManualRequests`` condition, a flaggerpy extension), so every request takes effect exactly once: setting the same
id again does nothing, a new id is a new request. Anyone can write the annotations with ``kubectl annotate``;
any string without spaces is a valid id (``kubectl annotate canary/podinfo flaggerpy.io/promote=$(date +%s)``).

The handled ids live in a condition rather than a status field of their own because a condition fits the
existing CRD schema: no schema change, and Flagger tooling that reads conditions by type ignores it.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

PREFIX = "flaggerpy.io"


class Action(enum.StrEnum):
    """A manual request the controller acts on."""

    PROMOTE = "promote"
    """Open the confirm gates and skip the remaining steps: promote the canary now."""
    ABORT = "abort"
    """Roll back now: all traffic to the primary, canary scaled to zero, phase Failed."""
    RETRY = "retry"
    """Re-run the analysis of a Failed revision without changing the pod template."""

    @property
    def annotation(self) -> str:
        """The annotation key, e.g. ``flaggerpy.io/promote``."""
        return f"{PREFIX}/{self.value}"


PROMOTE_ANNOTATION = Action.PROMOTE.annotation
ABORT_ANNOTATION = Action.ABORT.annotation
RETRY_ANNOTATION = Action.RETRY.annotation

HANDLED_CONDITION = "ManualRequests"
"""Condition type whose message lists the request ids the controller handled, ``promote=<id> abort=<id>``."""


def new_request_id(at: datetime | None = None) -> str:
    """A unique request id that also says when it was made: ``20261122T015800Z-1a2b3c``."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def requested(obj: Mapping[str, Any]) -> dict[Action, str]:
    """The request id in each manual-request annotation of a Canary object (absent or empty ones left out)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    out: dict[Action, str] = {}
    for action in Action:
        value = annotations.get(action.annotation)
        if isinstance(value, str) and value.strip():
            out[action] = value.strip()
    return out


def _condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == HANDLED_CONDITION:
            return cond
    return None


def handled(status: Mapping[str, Any]) -> dict[Action, str]:
    """The request id the controller last handled for each action, read from the status."""
    cond = _condition(status)
    out: dict[Action, str] = {}
    if cond is None:
        return out
    for word in str(cond.get("message") or "").split():
        key, sep, value = word.partition("=")
        if sep and value and key in Action._value2member_map_:
            out[Action(key)] = value
    return out


def pending(obj: Mapping[str, Any]) -> dict[Action, str]:
    """Requests written on the Canary that the controller has not handled yet."""
    done = handled(obj.get("status") or {})
    return {action: rid for action, rid in requested(obj).items() if done.get(action) != rid}


def record_handled(status: dict[str, Any], action: Action, request_id: str, outcome: str, at: datetime) -> None:
    """Mark ``request_id`` of ``action`` handled, in place; ``outcome`` is a CamelCase reason (Promoted, Ignored)."""
    done = handled(status)
    done[action] = request_id
    message = " ".join(f"{a.value}={done[a]}" for a in Action if a in done)
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    entry = {
        "type": HANDLED_CONDITION,
        "status": "True",
        "reason": outcome,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }
    for i, cond in enumerate(conditions):
        if cond.get("type") == HANDLED_CONDITION:
            entry["lastTransitionTime"] = cond.get("lastTransitionTime") or stamp
            conditions[i] = entry
            return
    conditions.append(entry)
