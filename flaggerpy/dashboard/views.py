"""What the dashboard's pages show, as JSON-ready dicts computed from cached objects (no I/O).

The list row reuses ``flaggerpy get``'s numbers (:func:`flaggerpy.ctl.view.row`) so the terminal and the browser
agree; the canary page adds the release timeline, metric series, webhooks, route, revisions and past releases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from flaggerpy.apis.annotations import Action
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary import manual
from flaggerpy.canary.phases import Phase
from flaggerpy.canary.status import timestamp
from flaggerpy.ctl.view import RELEASE_START, EventLine, Row, events_for, parse_canary, parse_time, row, row_from
from flaggerpy.kube.api import Obj
from flaggerpy.outbound import redact_url

# Events that say the canary weight now is N, and those that mean all traffic went back to the primary.
_ADVANCE = re.compile(r"^Advance \S+ canary weight (\d+)")
_SUCCEEDED = "Promotion completed"
_FAILED = ("Canary failed", "Rolling back")
_TO_PRIMARY = (_SUCCEEDED, *_FAILED)


def _stamp(when: datetime | None) -> str | None:
    return timestamp(when) if when else None


def _event(line: EventLine) -> dict[str, Any]:
    return {"time": _stamp(line.time), "type": line.type, "reason": line.reason, "message": line.message,
            "count": line.count}


def list_row(obj: Obj, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The Canaries page's line of one Canary (``events``: the Events about it, any order)."""
    return _row_dict(obj, row(obj, events))


def _row_dict(obj: Obj, r: Row) -> dict[str, Any]:
    status = obj.get("status") or {}
    return {
        "key": f"{r.namespace}/{r.name}",
        "namespace": r.namespace,
        "name": r.name,
        "phase": r.phase,
        "weight": r.weight,
        "iterations": int(status.get("iterations") or 0),
        "failedChecks": r.failed_checks,
        "threshold": r.threshold,
        "progress": None if r.progress is None else {"done": r.progress.done, "total": r.progress.total,
                                                     "unit": r.progress.unit},
        "lastTransitionTime": _stamp(r.last_transition),
        "message": r.message,
        "suspended": bool((obj.get("spec") or {}).get("suspend")),
    }


def available_actions(obj: Obj) -> dict[str, bool]:
    """Which actions can take effect now (the server checks again when one is requested)."""
    suspended = bool((obj.get("spec") or {}).get("suspend"))
    phase = Phase.parse((obj.get("status") or {}).get("phase"))
    out = {a.value: not suspended and manual.applies(a, phase) for a in Action}
    out["pause"] = not suspended
    out["resume"] = suspended
    return out


def timeline(status: Mapping[str, Any], lines: list[EventLine], now: datetime) -> list[dict[str, Any]]:
    """The weight steps of the current release, oldest first: ``{time, weight, label}``.

    Taken from the Events that moved traffic (their text is Flagger's; ``lines`` in the order they happened), else
    from the metric samples (each carries the weight it was measured at), and the status now.
    """
    start = next((ln.time for ln in reversed(lines) if ln.message.startswith(RELEASE_START)), None)
    points: list[tuple[datetime, int, str]] = []
    for line in lines:
        if line.time is None or (start is not None and line.time < start):
            continue
        match = _ADVANCE.match(line.message)
        if match:
            points.append((line.time, int(match.group(1)), line.message))
        elif line.message.startswith((RELEASE_START, *_TO_PRIMARY)):
            points.append((line.time, 0, line.message))
    if not any(_ADVANCE.match(p[2]) for p in points):
        # No Events that moved traffic (expired after an hour, or not listable): the samples still say the weights.
        for sample in status.get("metricHistory") or []:
            when = parse_time(sample.get("time"))
            if when is not None and (start is None or when >= start):
                points.append((when, int(sample.get("weight") or 0), f"analysis at weight {sample.get('weight')}"))
        points.sort(key=lambda p: p[0])
    out: list[dict[str, Any]] = []
    for when, weight, label in points:
        if out and out[-1]["weight"] == weight:
            continue
        out.append({"time": _stamp(when), "weight": weight, "label": label})
    current = int(status.get("canaryWeight") or 0)
    if not out or out[-1]["weight"] != current:
        out.append({"time": _stamp(parse_time(status.get("lastTransitionTime")) or now), "weight": current,
                    "label": f"status: canary weight {current}"})
    return out


def metrics(canary: Canary | None, status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each metric check with its threshold range and every value measured (from ``status.metricHistory``)."""
    history = list(status.get("metricHistory") or [])
    declared = canary.analysis.metrics or [] if canary is not None else []
    names = [m.name for m in declared] + sorted({str(s.get("name")) for s in history} - {m.name for m in declared})
    ranges = {m.name: m.effective_range for m in declared}
    out = []
    for name in names:
        bounds = ranges.get(name)
        out.append({
            "name": name,
            "min": bounds.min if bounds else None,
            "max": bounds.max if bounds else None,
            "samples": [{"time": s.get("time"), "value": s.get("value"), "passed": bool(s.get("passed")),
                         "weight": s.get("weight"), "iteration": s.get("iteration")}
                        for s in history if s.get("name") == name],
        })
    return out


def webhooks(canary: Canary | None, status: Mapping[str, Any], lines: list[EventLine]) -> list[dict[str, Any]]:
    """The canary's webhooks, each with its recorded calls (``status.webhookHistory``: rollout hooks) and what the
    Events say about it (gates passed or waiting, failures)."""
    if canary is None:
        return []
    history = list(status.get("webhookHistory") or [])
    out = []
    for hook in canary.analysis.webhooks or []:
        said = [_event(ln) for ln in lines if f" {hook.name} " in f" {ln.message} " or ln.message.endswith(hook.name)]
        calls = [{"time": c.get("time"), "weight": c.get("weight"), "iteration": c.get("iteration"),
                  "passed": bool(c.get("passed")), "statusCode": c.get("statusCode"), "error": c.get("error")}
                 for c in history if c.get("name") == hook.name]
        out.append({"name": hook.name, "type": hook.hook_type, "url": redact_url(hook.url),
                    "timeout": hook.timeout_seconds, "calls": calls, "results": said})
    return out


def route_view(route: Obj | None) -> dict[str, Any] | None:
    """The HTTPRoute as YAML (without managedFields) and each parent's Accepted condition."""
    if route is None:
        return None
    meta = {k: v for k, v in (route.get("metadata") or {}).items() if k != "managedFields"}
    shown = {"apiVersion": route.get("apiVersion"), "kind": route.get("kind", "HTTPRoute"), "metadata": meta,
             "spec": route.get("spec"), "status": route.get("status")}
    parents = []
    for parent in (route.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        accepted: dict[str, Any] = next(
            (c for c in parent.get("conditions") or [] if c.get("type") == "Accepted"), {})
        parents.append({
            "parent": f"{ref.get('namespace') or meta.get('namespace')}/{ref.get('name')}",
            "controller": parent.get("controllerName"),
            "accepted": accepted.get("status", "Unknown"),
            "reason": accepted.get("reason", ""),
            "message": accepted.get("message", ""),
            "observedGeneration": accepted.get("observedGeneration"),
        })
    return {"name": meta.get("name"), "generation": meta.get("generation"),
            "yaml": yaml.safe_dump(shown, sort_keys=False), "parents": parents}


def revision(workload: Obj | None) -> dict[str, Any] | None:
    """The images and readiness of a Deployment/DaemonSet."""
    if workload is None:
        return None
    spec = workload.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    status = workload.get("status") or {}
    return {
        "name": (workload.get("metadata") or {}).get("name"),
        "images": [{"container": c.get("name"), "image": c.get("image")} for c in containers],
        "replicas": spec.get("replicas"),
        "ready": status.get("readyReplicas", 0),
    }


def releases(status: Mapping[str, Any], lines: list[EventLine]) -> list[dict[str, Any]]:
    """Past and current releases, newest first: when each began and ended, its outcome and its metric checks."""
    starts = [i for i, ln in enumerate(lines) if ln.message.startswith(RELEASE_START)]
    history = list(status.get("metricHistory") or [])
    out = []
    for n, first in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        chunk = lines[first:end]
        outcome = "in progress"
        ended: datetime | None = None
        for ln in chunk:
            if ln.message.startswith(_SUCCEEDED):
                outcome, ended = "Succeeded", ln.time
            elif ln.message.startswith(_FAILED):
                outcome, ended = "Failed", ln.time
        began = chunk[0].time
        until = lines[end].time if end < len(lines) else None
        samples = [s for s in history if _within(parse_time(s.get("time")), began, until)]
        out.append({
            "started": _stamp(began), "ended": _stamp(ended), "outcome": outcome,
            "message": chunk[0].message, "events": len(chunk),
            "checks": len(samples), "failedChecks": sum(1 for s in samples if not s.get("passed")),
        })
    out.reverse()
    return out


def _within(when: datetime | None, began: datetime | None, until: datetime | None) -> bool:
    if when is None:
        return False
    return (began is None or when >= began) and (until is None or when < until)


def detail(obj: Obj, events: Iterable[Mapping[str, Any]], route: Obj | None, primary: Obj | None,
           target: Obj | None, now: datetime | None = None, canary: Canary | None = None) -> dict[str, Any]:
    """Everything the canary page shows; ``canary``: ``obj`` already parsed (validating it again costs)."""
    now = now or datetime.now(UTC)
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    status = obj.get("status") or {}
    canary = canary or parse_canary(obj)
    lines = events_for(events, namespace, name)
    analysis = canary.analysis if canary is not None else None
    return {
        "row": _row_dict(obj, row_from(obj, canary, lines)),
        "strategy": canary.strategy.value if canary is not None else None,
        "analysis": None if analysis is None else {
            "interval": analysis.interval, "threshold": canary.threshold if canary else None,
            "maxWeight": canary.max_weight if canary else None, "stepWeight": analysis.step_weight,
            "iterations": canary.iterations if canary else None,
        },
        "valid": canary is not None,
        "conditions": [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
                        "message": c.get("message")} for c in status.get("conditions") or []],
        "actions": available_actions(obj),
        "timeline": timeline(status, lines, now),
        "metrics": metrics(canary, status),
        "webhooks": webhooks(canary, status, lines),
        "events": [_event(ln) for ln in reversed(lines)],
        "route": route_view(route),
        "revisions": {"primary": revision(primary), "canary": revision(target)},
        "releases": releases(status, lines),
    }
