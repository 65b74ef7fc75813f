"""What ``get`` and ``status`` show, computed from plain Canary and Event objects (no I/O, no rendering).

Keeping the numbers apart from the rendering lets the live view, the plain table and the tests agree on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary, Strategy
from flaggerpy.canary.workload import spec_hash

DONE_PHASES = ("Promoting", "Finalising", "Succeeded")
RELEASE_START = "New revision detected"
# The engine's Event when a newer revision arrives while one is analysed (canary/reconciler.py).
RESTART = "New revision detected! Restarting analysis"
# Event messages that begin a new analysis attempt within a release (the engine's texts, see canary/manual.py).
ATTEMPT_STARTS = ("New revision detected", "Manual retry of")


@dataclass(frozen=True)
class Progress:
    """How far a release is through its steps: ``done`` of ``total`` (weights, or iterations for A/B, blue/green)."""

    done: int
    total: int
    unit: str

    @property
    def fraction(self) -> float:
        """0.0 .. 1.0 (0 when there are no steps)."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    def bar(self, width: int = 10) -> str:
        """A text bar such as ``[####------] 2/5``."""
        filled = round(self.fraction * width)
        return f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total}"


@dataclass(frozen=True)
class EventLine:
    """One Kubernetes Event about a canary, normalised across the time fields Events may carry."""

    time: datetime | None
    type: str
    reason: str
    message: str
    count: int


@dataclass(frozen=True)
class Row:
    """One line of ``flaggerpy get canaries``."""

    namespace: str
    name: str
    phase: str
    weight: int
    failed_checks: int
    threshold: int | None
    progress: Progress | None
    last_transition: datetime | None
    message: str
    suspended: bool = False
    waiting_revision: bool = False


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from a Kubernetes object, None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def count(obj: Mapping[str, Any], key: str) -> int:
    """An integer field of a status or sample; 0 when absent or not a number (a view must never crash on it)."""
    value = obj.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def format_time(when: datetime | None) -> str:
    """``2026-11-22T01:50:22Z`` (``-`` when unknown): stable for scripts."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else "-"


def format_age(when: datetime | None, now: datetime) -> str:
    """kubectl-style age: ``45s``, ``3m``, ``2h``, ``5d`` (``-`` when unknown)."""
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_canary(obj: Mapping[str, Any]) -> Canary | None:
    """The typed Canary, or None when its spec is invalid (the row still shows what the status says)."""
    try:
        return Canary.from_dict(dict(obj))
    except SpecError:
        return None


def progress(canary: Canary | None, status: Mapping[str, Any]) -> Progress | None:
    """Steps done out of the release's schedule: weights for a canary, iterations for A/B and blue/green."""
    if canary is None:
        return None
    phase = str(status.get("phase") or "")
    if canary.strategy is Strategy.CANARY:
        schedule = canary.weight_schedule()
        total = len(schedule)
        weight = count(status, "canaryWeight")
        done = total if phase in DONE_PHASES else sum(1 for w in schedule if w <= weight)
        return Progress(done, total, "weight")
    total = canary.iterations
    done = total if phase in DONE_PHASES else min(total, count(status, "iterations"))
    return Progress(done, total, "iteration")


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When an Event last happened: lastTimestamp, else eventTime, else firstTimestamp, else creation."""
    for value in (event.get("lastTimestamp"), event.get("eventTime"), event.get("firstTimestamp"),
                  (event.get("metadata") or {}).get("creationTimestamp")):
        when = parse_time(value)
        if when is not None:
            return when
    return None


def _event_count(event: Mapping[str, Any]) -> int:
    series = event.get("series") or {}
    count = series.get("count") or event.get("count") or 1
    return int(count) if isinstance(count, int) else 1


def events_by_canary(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[EventLine]]:
    """The Events about each Canary, by (namespace, name), oldest first: one pass over ``events`` for a whole
    table, instead of one per row."""
    out: dict[tuple[str, str], list[EventLine]] = {}
    for event in events:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if involved.get("kind") != "Canary":
            continue
        namespace = involved.get("namespace") or (event.get("metadata") or {}).get("namespace")
        key = (str(namespace or ""), str(involved.get("name") or ""))
        out.setdefault(key, []).append(
            EventLine(event_time(event), str(event.get("type") or ""), str(event.get("reason") or ""),
                      str(event.get("message") or event.get("note") or ""), _event_count(event)))
    epoch = datetime.min.replace(tzinfo=UTC)
    for lines in out.values():
        lines.sort(key=lambda e: e.time or epoch)
    return out


def events_for(events: Iterable[Mapping[str, Any]], namespace: str, name: str) -> list[EventLine]:
    """The Events about the Canary ``namespace/name``, oldest first."""
    return events_by_canary(events).get((namespace, name), [])


def current_release(lines: list[EventLine]) -> list[EventLine]:
    """The Events since the current release started (its last "New revision detected", a restart of a running
    analysis by a newer revision being an attempt of the same release), or all of them."""
    starts = [i for i, line in enumerate(lines)
              if line.message.startswith(RELEASE_START) and not line.message.startswith(RESTART)]
    return lines[starts[-1]:] if starts else lines


def attempts(lines: list[EventLine]) -> list[list[EventLine]]:
    """A release's Events split into its analysis attempts, oldest first; the last one is the current attempt.

    An attempt starts with the release, with a retry of a failed analysis (``flaggerpy retry``) and with a restart
    (a new revision while the analysis ran); an earlier attempt ended rolled back, aborted or superseded.
    """
    out: list[list[EventLine]] = []
    for line in lines:
        if not out or line.message.startswith(ATTEMPT_STARTS):
            out.append([])
        out[-1].append(line)
    return out or [[]]


def target_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) of a Canary's ``spec.targetRef``, the key ``row`` looks targets up by."""
    ref = (obj.get("spec") or {}).get("targetRef") or {}
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    return str(ref.get("kind") or "Deployment"), namespace, str(ref.get("name") or "")


def waiting_revision(obj: Mapping[str, Any], target: Mapping[str, Any] | None) -> bool:
    """Whether the target's pod template is a revision the Canary has not started analysing yet.

    The controller records the analysed revision as ``status.lastAppliedSpec`` (the template's ``spec_hash``); a
    suspended canary leaves a newer one waiting until it is resumed.
    """
    applied = (obj.get("status") or {}).get("lastAppliedSpec")
    template = ((target or {}).get("spec") or {}).get("template")
    return bool(applied) and isinstance(template, dict) and spec_hash(template) != applied


def suspended_message(name: str, namespace: str, waiting: bool) -> str:
    """What a suspended canary's row says instead of its last Event."""
    resume = f"flaggerpy resume {name} -n {namespace}"
    if waiting:
        return f"suspended; a new revision is waiting: {resume} starts its analysis"
    return f"suspended: {resume} to continue"


def row(obj: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
        targets: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None) -> Row:
    """The ``get canaries`` line of one Canary object, with its latest Event's message.

    ``targets`` (by :func:`target_key`) lets a suspended canary's row say whether a new revision waits behind it.
    """
    meta = obj.get("metadata") or {}
    lines = events_for(events, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    return row_from(obj, parse_canary(obj), lines, targets)


def row_from(obj: Mapping[str, Any], canary: Canary | None, lines: list[EventLine],
             targets: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None) -> Row:
    """:func:`row` for a caller that has already parsed the Canary and picked its Events (oldest first)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    message = lines[-1].message if lines else ""
    if not message:
        promoted = next((c for c in status.get("conditions") or [] if c.get("type") == "Promoted"), None)
        message = str((promoted or {}).get("message") or "")
    suspended = (obj.get("spec") or {}).get("suspend") is True
    waiting = suspended and waiting_revision(obj, (targets or {}).get(target_key(obj)))
    if suspended:
        message = suspended_message(name, namespace, waiting)
    return Row(
        namespace=namespace,
        name=name,
        phase=str(status.get("phase") or "Unknown"),
        weight=count(status, "canaryWeight"),
        failed_checks=count(status, "failedChecks"),
        threshold=canary.threshold if canary else None,
        progress=progress(canary, status),
        last_transition=parse_time(status.get("lastTransitionTime")),
        message=message,
        suspended=suspended,
        waiting_revision=waiting,
    )


@dataclass(frozen=True)
class StepView:
    """One analysis step of the current release: its weight/iteration, when it was measured, the metric values."""

    iteration: int
    weight: int
    time: datetime | None
    metrics: list[MetricValue]


@dataclass(frozen=True)
class MetricValue:
    """One metric at one step: its value (None without one), the verdict, and the query's error if it failed."""

    name: str
    value: float | None
    passed: bool
    error: str = ""


def steps_of(status: Mapping[str, Any], since: datetime | None = None,
             until: datetime | None = None) -> list[StepView]:
    """The metric history grouped by step (consecutive samples of one weight and iteration), oldest first;
    only samples from ``since`` and before ``until`` when given."""
    out: list[StepView] = []
    for sample in status.get("metricHistory") or []:
        when = parse_time(sample.get("time"))
        if since is not None and when is not None and when < since:
            continue
        if until is not None and when is not None and when >= until:
            continue
        iteration, weight = count(sample, "iteration"), count(sample, "weight")
        value = sample.get("value")
        metric = MetricValue(str(sample.get("name") or ""), float(value) if isinstance(value, int | float) else None,
                             bool(sample.get("passed")), str(sample.get("error") or ""))
        last = out[-1] if out else None
        if last is not None and (last.iteration, last.weight, last.time) == (iteration, weight, when):
            last.metrics.append(metric)
        else:
            out.append(StepView(iteration, weight, when, [metric]))
    return out
