"""All the engine remembers about a canary between its reconciles, in one object per canary, dropped on delete.

The Canary's status is the only memory of a release (design.md); what is kept here are caches that spare work
between reconciles (a parse, a hash, "the Services were in order", the route as built and as last written). Losing
them costs a rebuild or a read, never a wrong decision. Keeping them in one place per canary is what makes them
bounded: a controller that sees thousands of canaries come and go holds memory only for the ones that exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flaggerpy.routing.memo import RouteMemo

if TYPE_CHECKING:
    from flaggerpy.canary.parsed import ParsedEntry
    from flaggerpy.canary.steps import Plan


@dataclass
class CanaryMemo:
    """One canary's caches."""

    parsed: ParsedEntry | None = None
    """The spec last parsed and its model (canary/parsed.py)."""
    template_hash: tuple[Any, str] | None = None
    """(pod template, its spec hash) of the target as last hashed."""
    services_in_order: tuple[Any, tuple[Any, ...]] | None = None
    """(spec, inputs) with which the three Services were last found in order."""
    primary_in_order: tuple[Any, tuple[Any, ...]] | None = None
    """(target spec, inputs) with which the primary workload was last found in order."""
    route: RouteMemo = field(default_factory=RouteMemo)
    """The router's caches for this canary's route."""
    phase: str | None = None
    """The phase telemetry last saw written, so a promotion or rollback is counted once."""
    suspension_reported: bool = False
    """Flagger's "skipping canary run as object is suspended" Event was given for the current suspension."""


class Memos:
    """The memo of every canary this engine has reconciled, by ``namespace/name``."""

    def __init__(self) -> None:
        self._by_key: dict[str, CanaryMemo] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def of(self, key: str) -> CanaryMemo:
        """The memo of canary ``key``, created empty on first use."""
        memo = self._by_key.get(key)
        if memo is None:
            memo = self._by_key[key] = CanaryMemo()
        return memo

    def peek(self, key: str) -> CanaryMemo | None:
        """The memo of canary ``key`` if there is one (never creates it)."""
        return self._by_key.get(key)

    def plan(self, key: str) -> Plan | None:
        """The plan of canary ``key`` as last parsed, or None when it was never parsed here."""
        memo = self._by_key.get(key)
        return None if memo is None or memo.parsed is None else memo.parsed.parsed.plan

    def drop(self, key: str) -> None:
        """Forget canary ``key`` (it was deleted)."""
        self._by_key.pop(key, None)
