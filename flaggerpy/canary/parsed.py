"""Parsed Canaries, remembered per spec: a reconcile or an Event should not re-validate a spec that did not change.

Validation (pydantic, the lenient re-parse, the cross-field checks) and the schedule derived from it cost more than
everything else a no-op reconcile does, yet the spec changes once per edit while the status changes every step.
So the spec part is parsed once and kept per canary; each call only parses the status (small, and it must be
fresh) and attaches it to the remembered model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from flaggerpy.apis.errors import FieldError
from flaggerpy.apis.flagger import Canary, CanaryStatus
from flaggerpy.canary import steps
from flaggerpy.canary.memo import Memos

# Metadata the Canary model carries besides the always-changing resourceVersion.
_MODEL_METADATA = ("uid", "generation", "labels", "annotations", "deletionTimestamp", "finalizers",
                   "ownerReferences", "creationTimestamp")


@dataclass(frozen=True)
class Parsed:
    """One Canary as the engine works with it."""

    canary: Canary
    """The typed model, status included."""
    plan: steps.Plan
    """The schedule the spec asks for."""
    warnings: tuple[FieldError, ...]
    """Fields Flagger ignores beside others (``Canary.spec_warnings``)."""


@dataclass(frozen=True)
class ParsedEntry:
    """The spec and metadata a :class:`Parsed` came from (kept in the canary's memo)."""

    spec: Any
    metadata: tuple[Any, ...]
    parsed: Parsed


def _metadata(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return tuple(meta.get(key) for key in _MODEL_METADATA)


class ParsedCanaries:
    """Parse Canaries through a per-canary memory of the last spec seen (kept in each canary's memo)."""

    def __init__(self, memos: Memos | None = None) -> None:
        self._memos = memos if memos is not None else Memos()

    def parse(self, obj: dict[str, Any]) -> Parsed:
        """The parsed Canary of ``obj`` (a Kubernetes dict, never modified); SpecError exactly as
        :meth:`Canary.from_dict` raises it."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}" if isinstance(meta, dict) else ""
        memo = self._memos.peek(key) if key else None
        entry = memo.parsed if memo is not None else None
        spec, metadata = obj.get("spec"), _metadata(obj)
        if entry is not None and entry.metadata == metadata and entry.spec == spec:
            try:
                status = CanaryStatus.model_validate(obj.get("status") or {})
            except ValidationError:
                status = None  # the full parse below names the bad status fields in its usual words
            if status is not None:
                canary = entry.parsed.canary.model_copy(update={"status": status})
                return Parsed(canary, entry.parsed.plan, entry.parsed.warnings)
        canary = Canary.from_dict(obj)
        parsed = Parsed(canary, steps.plan_of(canary), tuple(canary.spec_warnings()))
        if key:
            self._memos.of(key).parsed = ParsedEntry(spec, metadata, parsed)
        return parsed

    def plan(self, key: str) -> steps.Plan | None:
        """The plan of the canary ``namespace/name`` as last parsed, or None when it was never parsed here."""
        return self._memos.plan(key)

    def forget(self, key: str) -> None:
        """Drop the memory of a deleted canary."""
        self._memos.drop(key)
