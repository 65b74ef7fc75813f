"""The benchmark's figures, computed without I/O so each is unit-tested (``tests/unit/test_bench_stats.py``):
percentiles, how each observed Canary status and HTTPRoute version is classified, which API requests were the
bench's own, where the controller's writes went (per weight step, per release, Events, Leases) and how every figure
grows from one run to the next.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list"})

# How one new Canary status version relates to the previous one.
PHASE_CHANGE = "phase_change"  # e.g. Initialized → Progressing, Progressing → Promoting, → Failed
WEIGHT_STEP = "weight_step"  # same phase, only canaryWeight or iterations moved: the analysis advanced
NO_TRANSITION = "no_transition"  # same phase, weight and iteration: a halt condition, a message, failedChecks

# How one new HTTPRoute version relates to the previous one.
ROUTE_STEP = "route_step"  # the canary backend's weight moved to a non-zero value
ROUTE_TO_PRIMARY = "route_to_primary"  # the canary backend's weight went back to 0 (finalise, rollback)
ROUTE_OTHER = "route_other"  # created, or a spec change that kept the weights (repair, init)

# How one new Deployment version relates to the previous one (only spec changes: a new generation).
SCALE_UP = "target_scale_up"  # the target's replicas 0 → n: the canary is started
SCALE_DOWN = "target_scale_down"  # the target's replicas n → 0: promoted or rolled back
PRIMARY_COPY = "primary_copy"  # the primary's pod template changed: the canary's spec was promoted
DEPLOYMENT_OTHER = "deployment_other"  # any other spec change (primary scaling, labels, repair)
TARGET_EDIT = "target_edit"  # the target's pod template changed: the bench's own edit, not the controller's

DeploymentState = tuple[int, int, str]  # (generation, replicas, pod template fingerprint)

DEPLOYMENTS = "deployments.apps"
EVENTS = "events"
LEASES = "leases.coordination.k8s.io"
CANARY_STATUS = "canaries.flagger.app/status"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"

State = tuple[str, int, int]  # (phase, canaryWeight, iterations)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> dict[str, Any]:
    """p50/p99/max in milliseconds of values in seconds."""
    def ms(q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 1)

    return {"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0), "samples": len(values)}


def parse_time(text: Any) -> float | None:
    """A status timestamp as epoch seconds; None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def status_state(status: Mapping[str, Any]) -> State:
    """The part of a Canary status that makes a state-machine transition."""
    return (str(status.get("phase") or ""), int(status.get("canaryWeight") or 0), int(status.get("iterations") or 0))


def classify_status(before: State | None, after: State) -> str:
    """What a new status version did: changed the phase, took a weight (or iteration) step, or neither."""
    if before is None or before[0] != after[0]:
        return PHASE_CHANGE
    if before[1:] != after[1:]:
        return WEIGHT_STEP
    return NO_TRANSITION


def classify_route(before: tuple[int, int] | None, after: tuple[int, int]) -> str | None:
    """What a new route version ``(generation, canary weight)`` did; None for a status-only version (written by
    the Gateway, not by the controller)."""
    if before is None:
        return ROUTE_OTHER
    if after[0] == before[0]:
        return None
    if after[1] != before[1]:
        return ROUTE_STEP if after[1] > 0 else ROUTE_TO_PRIMARY
    return ROUTE_OTHER


def classify_deployment(before: DeploymentState | None, after: DeploymentState, primary: bool) -> str | None:
    """What a new Deployment version did; None for a status-only version (the workload controller's) or a new
    object."""
    if before is None or after[0] == before[0]:
        return None
    if after[2] != before[2]:
        return PRIMARY_COPY if primary else TARGET_EDIT
    if not primary and before[1] == 0 and after[1] > 0:
        return SCALE_UP
    if not primary and before[1] > 0 and after[1] == 0:
        return SCALE_DOWN
    return DEPLOYMENT_OTHER


def request_key(method: str, path: str) -> tuple[str, str] | None:
    """``(verb, resource)`` as the sandbox counts a request (``plural.group[/sub]``); None for paths it does not
    count (discovery, ``/sandbox/...``)."""
    path, _, query = path.partition("?")
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    resource = rest[0] + (f".{group}" if group else "") + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    method = method.upper()
    if method == "GET":
        verb = "get" if named else ("watch" if "watch=true" in query or "watch=1" in query else "list")
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return verb, resource


def subtract(counters: Mapping[str, Mapping[str, int]],
             own: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """The sandbox's ``{resource: {verb: n}}`` minus the bench's own requests; zero entries dropped."""
    result = {resource: dict(verbs) for resource, verbs in counters.items()}
    for (verb, resource), n in own.items():
        verbs = result.get(resource)
        if verbs is not None and verb in verbs:
            verbs[verb] = max(0, verbs[verb] - n)
    return {r: {v: n for v, n in verbs.items() if n} for r, verbs in result.items() if any(verbs.values())}


def counter_by_label(metrics_text: str, metric: str, label: str) -> dict[str, float]:
    """Sum of a Prometheus counter's samples in ``metrics_text`` by one label's value (``_total`` samples only)."""
    out: dict[str, float] = {}
    prefix = metric + "{"
    for line in metrics_text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line[len(prefix):].rpartition("} ")
        found = ""
        for pair in labels.split(","):
            key, _, quoted = pair.partition("=")
            if key.strip() == label:
                found = quoted.strip().strip('"')
        try:
            out[found] = out.get(found, 0.0) + float(value)
        except ValueError:
            continue
    return out


def _ratio(n: float, d: float) -> float | None:
    return round(n / d, 3) if d else None


def _writes(verbs: Mapping[str, int]) -> int:
    return sum(n for v, n in verbs.items() if v in WRITE_VERBS)


def _reads(verbs: Mapping[str, int]) -> int:
    return sum(n for v, n in verbs.items() if v in READ_VERBS)


def per_step(calls: Mapping[str, Mapping[str, int]], steps: int) -> dict[str, Any]:
    """Calls per state-machine transition by verb, writes/reads per transition and the resources they went to."""
    by_verb: Counter[str] = Counter()
    for verbs in calls.values():
        by_verb.update(verbs)
    return {
        "by_verb": {verb: _ratio(n, steps) for verb, n in sorted(by_verb.items())},
        "writes": _ratio(_writes(by_verb), steps),
        "writes_without_events": _ratio(sum(_writes(v) for r, v in calls.items() if r != EVENTS), steps),
        "reads": _ratio(_reads(by_verb), steps),
        # A standby's Lease reads follow the clock (retry period), not the steps.
        "reads_without_leases": _ratio(sum(_reads(v) for r, v in calls.items() if r != LEASES), steps),
        "writes_by_resource": {r: _ratio(_writes(v), steps) for r, v in sorted(calls.items()) if _writes(v)},
        "reads_by_resource": {r: _ratio(_reads(v), steps) for r, v in sorted(calls.items()) if _reads(v)},
    }


def write_accounting(calls: Mapping[str, Mapping[str, int]], statuses: Mapping[str, int],
                     routes: Mapping[str, int], releases: int, transitions: int, seconds: float,
                     deployments: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Where the controller's API requests went during a release window.

    ``calls`` are the controller's requests (bench's own removed); ``statuses``, ``routes`` and ``deployments``
    count the Canary status, HTTPRoute and Deployment versions the bench watched, by classification. A weight step
    should cost the route and the status; everything else a release does (phase changes, halts, routing back to the
    primary, Deployment scaling and primary copy, Services) is counted per release. Requests that left no visible
    version (a write that changed nothing, a 409) are counted per release as ``without_visible_change``, so the
    totals add up to the counters.
    """
    steps = statuses.get(WEIGHT_STEP, 0)
    step_routes = routes.get(ROUTE_STEP, 0)
    status_writes = _writes(calls.get(CANARY_STATUS, {}))
    route_writes = _writes(calls.get(HTTPROUTES, {}))
    seen_status = sum(statuses.values())
    seen_route = sum(routes.values())
    per_release: dict[str, Any] = {
        "status_phase_changes": _ratio(statuses.get(PHASE_CHANGE, 0), releases),
        "status_without_transition": _ratio(statuses.get(NO_TRANSITION, 0), releases),
        "route_to_primary": _ratio(routes.get(ROUTE_TO_PRIMARY, 0), releases),
        "route_other": _ratio(routes.get(ROUTE_OTHER, 0), releases),
    }
    release_writes = (statuses.get(PHASE_CHANGE, 0) + statuses.get(NO_TRANSITION, 0)
                      + routes.get(ROUTE_TO_PRIMARY, 0) + routes.get(ROUTE_OTHER, 0))
    for resource, verbs in sorted(calls.items()):
        if resource in (CANARY_STATUS, HTTPROUTES, EVENTS, LEASES) or not _writes(verbs):
            continue
        per_release[resource] = _ratio(_writes(verbs), releases)
        release_writes += _writes(verbs)
    invisible = {CANARY_STATUS: max(0, status_writes - seen_status), HTTPROUTES: max(0, route_writes - seen_route)}
    if deployments is not None:
        controller_made = {kind: n for kind, n in deployments.items() if kind != TARGET_EDIT}
        per_release["deployments_by_kind"] = {kind: _ratio(n, releases) for kind, n in sorted(controller_made.items())}
        invisible[DEPLOYMENTS] = max(0, _writes(calls.get(DEPLOYMENTS, {})) - sum(controller_made.values()))
    per_release["without_visible_change"] = {r: _ratio(n, releases) for r, n in invisible.items()}
    # Deployment writes are already in the per-resource figure above; only status and route no-ops are added.
    release_writes += invisible[CANARY_STATUS] + invisible[HTTPROUTES]
    per_release["writes"] = _ratio(release_writes, releases)
    events = _writes(calls.get(EVENTS, {}))
    lease = calls.get(LEASES, {})
    return {
        "weight_steps": steps,
        "releases": releases,
        "per_weight_step": {"status": _ratio(statuses.get(WEIGHT_STEP, 0), steps), "route": _ratio(step_routes, steps),
                            "writes": _ratio(statuses.get(WEIGHT_STEP, 0) + step_routes, steps)},
        "per_release": per_release,
        "events": {"per_transition": _ratio(events, transitions), "per_release": _ratio(events, releases)},
        "leases": {"writes_per_s": _ratio(_writes(lease), seconds), "reads_per_s": _ratio(_reads(lease), seconds)},
        "reads_by_resource": {r: _reads(v) for r, v in sorted(calls.items()) if _reads(v)},
    }


def figures(run: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a run's report as ``dotted.path → value`` (booleans and lists left out)."""
    out: dict[str, float] = {}
    for key, value in run.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(figures(value, path + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[path] = value
    return out


# The targets (at 1,000 canaries on 2 cores): figure path → (limit, inclusive).
TARGETS = {
    "detection.p99_ms": (50.0, False),
    "step_lag.p99_ms": (100.0, False),
    "writes.per_weight_step.writes": (2.0, True),
    "api_calls_per_step.reads": (0.0, True),
    "controller_peak_rss_mib": (200.0, False),
}


def targets(run: Mapping[str, Any]) -> dict[str, Any]:
    """Each target with the run's figure and whether it is met (None when the run has no such figure)."""
    flat = figures(run)
    out: dict[str, Any] = {}
    for path, (limit, inclusive) in TARGETS.items():
        value = flat.get(path)
        met = None if value is None else (value <= limit if inclusive else value < limit)
        out[path] = {"value": value, "limit": limit, "met": met}
    return out


HEADLINES = {
    "detection_p99": "detection.p99_ms", "step_lag_p99": "step_lag.p99_ms",
    "writes_per_step": "api_calls_per_step.writes", "cpu_s_per_step": "controller_cpu_s_per_step",
    "peak_rss_mib": "controller_peak_rss_mib", "rollback_p99": "rollback.p99_ms",
    "writes_per_weight_step": "writes.per_weight_step.writes", "writes_per_release": "writes.per_release.writes",
    "sandbox_cpu_s_per_step": "sandbox_cpu_s_per_step", "server_cpu_s_per_step": "server_cpu_s_per_step",
    "standby_cpu_s_per_step": "standby_cpu_s_per_step",
    "bench_cpu_ms_per_step": "cpu.bench.cpu_ms_per_step", "sandbox_peak_rss_mib": "cpu.sandbox.peak_rss_mib",
    "failover_s": "failover.kill_to_first_step_s",
}


def growth(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """How each figure grows from the first run to each run (ratio; None where the first is 0 or missing):
    the headline figures by name, and every numeric figure by its dotted path under ``all``."""
    flat = [figures(run) for run in runs]
    base = flat[0]

    def ratios(path: str) -> dict[str, float | None]:
        first = base.get(path)
        return {str(run["canaries"]): (None if not first or path not in f else round(f[path] / first, 2))
                for run, f in zip(runs, flat, strict=True)}

    out: dict[str, Any] = {name: ratios(path) for name, path in HEADLINES.items()}
    out["all"] = {path: ratios(path) for path in sorted(base) if path not in ("canaries",)}
    return out
