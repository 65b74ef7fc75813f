"""Fault injection and request counters, driven in-process (``sb.faults``) or over HTTP (``/sandbox/faults``).

A rule's ``verb`` is a Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection) or "*";
its ``resource`` is ``plural`` or ``plural.group`` (``deployments.apps``), optionally with ``/status``, or "*".
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class Rule:
    """Where a fault applies and how strongly: ``rate`` is a probability, ``seconds`` a delay."""

    verb: str = "*"
    resource: str = "*"
    rate: float = 1.0
    code: int = 500
    seconds: float = 0.0

    def applies(self, verb: str, resource: str) -> bool:
        """Whether the rule covers this request (``resource`` is ``plural.group[/sub]``)."""
        if self.verb not in ("*", verb):
            return False
        return self.resource == "*" or self.resource in resource_names(resource)


def resource_names(resource: str) -> set[str]:
    """Every name a rule may use for ``plural.group[/sub]``: with or without group, with or without sub."""
    base, _, sub = resource.partition("/")
    plural = base.split(".", 1)[0]
    names = {resource, base, plural}
    if sub:
        names.add(f"{plural}/{sub}")
    return names


def _rule(data: dict[str, Any], what: str) -> Rule:
    allowed = {"verb", "resource", "rate", "code", "seconds"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {sorted(unknown)} (allowed: {sorted(allowed)})")
    rule = Rule(**data)
    if not 0.0 <= float(rule.rate) <= 1.0:
        raise ValueError(f"{what}.rate: must be between 0 and 1, got {rule.rate}")
    if rule.seconds < 0:
        raise ValueError(f"{what}.seconds: must be >= 0, got {rule.seconds}")
    if not 400 <= int(rule.code) <= 599:
        raise ValueError(f"{what}.code: must be an HTTP error code (400-599), got {rule.code}")
    return rule


@dataclass
class Faults:
    """The faults in force. Empty by default: the sandbox behaves like a healthy cluster."""

    errors: list[Rule] = field(default_factory=list)
    latency: list[Rule] = field(default_factory=list)
    conflicts: list[Rule] = field(default_factory=list)
    drop_watches_every: float | None = None
    gone_next: dict[str, int] = field(default_factory=dict)
    seed: int | None = None

    _random: random.Random = field(init=False, repr=False, compare=False)
    """Set with ``seed`` (see __setattr__)."""

    def __post_init__(self) -> None:
        self._drop_listeners: list[Callable[[], None]] = []

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "seed":
            # The draws restart from any seed set, at construction or later on a running sandbox's faults (as a
            # test does after its cluster is set up): a seed that only counted at construction was silently lost.
            super().__setattr__("_random", random.Random(value))

    def error_for(self, verb: str, resource: str) -> int | None:
        """The HTTP code to fail this request with, or None."""
        for rule in self.errors:
            if rule.applies(verb, resource) and self._random.random() < rule.rate:
                return rule.code
        return None

    def delay_for(self, verb: str, resource: str) -> float:
        """Seconds to hold this request before answering."""
        return sum(r.seconds for r in self.latency if r.applies(verb, resource) and self._random.random() < r.rate)

    def conflict_for(self, verb: str, resource: str) -> bool:
        """Whether this write gets an injected 409 Conflict."""
        if verb not in WRITE_VERBS:
            return False
        return any(r.applies(verb, resource) and self._random.random() < r.rate for r in self.conflicts)

    def force_gone(self, resource: str, count: int = 1) -> None:
        """Answer the next ``count`` watches of ``resource`` (``plural[.group]`` or "*") with 410 Gone."""
        self.gone_next[resource] = self.gone_next.get(resource, 0) + count

    def take_gone(self, resource: str) -> bool:
        """Consume one forced 410 for a watch of ``resource``, if one is pending."""
        for key in (*sorted(resource_names(resource)), "*"):
            if self.gone_next.get(key, 0) > 0:
                self.gone_next[key] -= 1
                if not self.gone_next[key]:
                    del self.gone_next[key]
                return True
        return False

    def drop_watches(self) -> None:
        """Close every open watch stream now (clients must reconnect and resume)."""
        for listener in list(self._drop_listeners):
            listener()

    def on_drop(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever watches are dropped (the server registers how to close its streams)."""
        self._drop_listeners.append(listener)

    def clear(self) -> None:
        """Remove every fault."""
        self.errors.clear()
        self.latency.clear()
        self.conflicts.clear()
        self.gone_next.clear()
        self.drop_watches_every = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form served at ``GET /sandbox/faults``."""
        return {
            "errors": [asdict(r) for r in self.errors],
            "latency": [asdict(r) for r in self.latency],
            "conflicts": [asdict(r) for r in self.conflicts],
            "drop_watches_every": self.drop_watches_every,
            "gone_next": dict(self.gone_next),
        }

    def update(self, data: dict[str, Any]) -> None:
        """Apply a JSON document (same shape as ``to_dict``; keys left out keep their value).

        ``{"drop_watches": true}`` additionally drops open watches now. Raises ValueError naming the bad field.
        """
        if not isinstance(data, dict):
            raise ValueError("faults: body must be a JSON object")
        known = {"errors", "latency", "conflicts", "drop_watches_every", "gone_next", "drop_watches"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"faults: unknown field(s) {sorted(unknown)} (allowed: {sorted(known)})")
        parsed: dict[str, list[Rule]] = {}
        for name in ("errors", "latency", "conflicts"):
            if name in data:
                if not isinstance(data[name], list):
                    raise ValueError(f"faults.{name}: must be a list of rules")
                parsed[name] = [_rule(r, f"faults.{name}[{i}]") for i, r in enumerate(data[name])]
        every = data.get("drop_watches_every", self.drop_watches_every)
        if every is not None and (not isinstance(every, int | float) or every <= 0):
            raise ValueError(f"faults.drop_watches_every: must be a positive number of seconds, got {every!r}")
        gone_next = data.get("gone_next", self.gone_next)
        if not isinstance(gone_next, dict) or not all(isinstance(v, int) and v >= 0 for v in gone_next.values()):
            raise ValueError("faults.gone_next: must map resource names to counts >= 0")
        for name, rules in parsed.items():
            setattr(self, name, rules)
        self.drop_watches_every = every
        self.gone_next = dict(gone_next)
        if data.get("drop_watches"):
            self.drop_watches()


class Counters:
    """Requests served, by verb and resource (``plural.group[/sub]``)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def inc(self, verb: str, resource: str) -> None:
        """Count one request."""
        self._counts[(verb, resource)] += 1

    def get(self, verb: str | None = None, resource: str | None = None) -> int:
        """Requests matching a verb and/or a resource (``plural`` or ``plural.group``); None matches all."""
        total = 0
        for (v, r), n in self._counts.items():
            if verb is not None and v != verb:
                continue
            if resource is not None and resource not in resource_names(r):
                continue
            total += n
        return total

    def reads(self, resource: str | None = None) -> int:
        """get + list requests (watches excluded): what a cache-driven controller should not need."""
        return self.get("get", resource) + self.get("list", resource)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{resource: {verb: count}}``, as served at ``GET /sandbox/counters``."""
        result: dict[str, dict[str, int]] = {}
        for (verb, resource), n in sorted(self._counts.items()):
            result.setdefault(resource, {})[verb] = n
        return result

    def reset(self) -> None:
        """Forget all counts."""
        self._counts.clear()
