"""Backend Services → simulated workloads, and the behaviour their pod-template annotations ask for.

A Service reaches the Deployment (or DaemonSet) whose pod-template labels carry every key of the Service's
selector, as kube-proxy would reach that workload's pods. The workload's answers are shaped by annotations on its
pod template, so a new canary revision (a template change) can behave differently from the primary:

- ``sandbox.flaggerpy.io/error-rate: "0.3"``: fraction of requests answered with 500;
- ``sandbox.flaggerpy.io/latency: "50ms"``: mean response time (Go duration syntax), jittered log-normally.

A workload without ready replicas answers 503, like a Gateway with no healthy upstream.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass

ERROR_RATE_ANNOTATION = "sandbox.flaggerpy.io/error-rate"
LATENCY_ANNOTATION = "sandbox.flaggerpy.io/latency"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class BehaviourError(ValueError):
    """An annotation value the simulator cannot use; the message names the annotation and the problem."""


def parse_duration_ms(text: str) -> float:
    """Parse a Go-style duration ("50ms", "1.5s", "1m30s") into milliseconds."""
    value = text.strip()
    if not value:
        raise BehaviourError("empty duration")
    position, total = 0, 0.0
    for part in _DURATION_PART.finditer(value):
        if part.start() != position:
            break
        total += float(part.group(1)) * _UNIT_MS[part.group(2)]
        position = part.end()
    if position != len(value):
        raise BehaviourError(f"{text!r} is not a duration (examples: 50ms, 1.5s, 1m30s)")
    return total


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a simulated workload answers: error fraction, mean latency and whether any replica is ready."""

    error_rate: float
    latency_ms: float
    ready: bool

    def sample(self, rng: random.Random, jitter: float) -> tuple[int, float]:
        """One response: (status code, latency in ms). ``jitter`` is the log-normal sigma around the mean."""
        if not self.ready:
            return 503, 0.0
        status = 500 if self.error_rate > 0 and rng.random() < self.error_rate else 200
        if self.latency_ms <= 0:
            return status, 0.0
        if jitter <= 0:
            return status, self.latency_ms
        # mu chosen so that the distribution's mean (not its median) equals the configured latency.
        mu = math.log(self.latency_ms) - jitter * jitter / 2
        return status, rng.lognormvariate(mu, jitter)


# What a Service whose selector reaches no workload behaves like: no endpoints, every request a 503.
NO_ENDPOINTS = Behaviour(error_rate=0.0, latency_ms=0.0, ready=False)


@dataclass(frozen=True, slots=True)
class Workload:
    """The workload a Service resolves to, with its behaviour; ``problems`` lists ignored bad annotations."""

    kind: str
    namespace: str
    name: str
    behaviour: Behaviour
    problems: tuple[str, ...] = ()
    pod: str = ""


def behaviour_of(workload: dict, kind: str, default_latency_ms: float) -> tuple[Behaviour, tuple[str, ...]]:
    """Read a Deployment/DaemonSet dict's behaviour; invalid annotations fall back to defaults with a problem."""
    spec = workload.get("spec") or {}
    annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    problems: list[str] = []
    error_rate = 0.0
    raw_rate = annotations.get(ERROR_RATE_ANNOTATION)
    if raw_rate is not None:
        try:
            error_rate = float(raw_rate)
            if not 0.0 <= error_rate <= 1.0:
                raise ValueError
        except ValueError:
            error_rate = 0.0
            problems.append(
                f"spec.template.metadata.annotations[{ERROR_RATE_ANNOTATION}]: "
                f"{raw_rate!r} must be a number between 0 and 1"
            )
    latency = default_latency_ms
    raw_latency = annotations.get(LATENCY_ANNOTATION)
    if raw_latency is not None:
        try:
            latency = parse_duration_ms(str(raw_latency))
        except BehaviourError as exc:
            problems.append(f"spec.template.metadata.annotations[{LATENCY_ANNOTATION}]: {exc}")
    return Behaviour(error_rate, latency, _ready_replicas(workload, kind) > 0), tuple(problems)


def _ready_replicas(workload: dict, kind: str) -> int:
    status = workload.get("status") or {}
    if kind == "DaemonSet":
        return int(status.get("numberReady") or 0)
    if (workload.get("spec") or {}).get("replicas") == 0:
        return 0
    return int(status.get("readyReplicas") or 0)


def pod_name(workload_name: str, workload: dict) -> str:
    """A stable pod name shaped like a ReplicaSet's (``<name>-<template hash>-<suffix>``).

    The hash follows the pod template, so a new revision shows up as a new pod, which is what queries that
    select pods by ``<target>-<hash>-<suffix>`` rely on.
    """
    template = json.dumps((workload.get("spec") or {}).get("template") or {}, sort_keys=True)
    digest = hashlib.sha256(template.encode()).hexdigest()
    return f"{workload_name}-{digest[:10]}-{digest[10:15]}"


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def resolve_workloads(
    services: list[dict],
    deployments: list[dict],
    daemonsets: list[dict],
    default_latency_ms: float,
) -> dict[tuple[str, str], Workload | None]:
    """Map every Service (namespace, name) to the workload its selector reaches, or None when there is none.

    When several workloads match, the oldest wins (then by name) so the choice is stable across resyncs.
    """
    candidates: dict[str, list[tuple[str, dict]]] = {}
    for kind, items in (("Deployment", deployments), ("DaemonSet", daemonsets)):
        for item in items:
            namespace = item.get("metadata", {}).get("namespace", "")
            candidates.setdefault(namespace, []).append((kind, item))
    for items in candidates.values():
        items.sort(
            key=lambda pair: (
                pair[1].get("metadata", {}).get("creationTimestamp") or "",
                pair[1].get("metadata", {}).get("name", ""),
            )
        )
    resolved: dict[tuple[str, str], Workload | None] = {}
    for service in services:
        meta = service.get("metadata", {})
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        selector = (service.get("spec") or {}).get("selector") or {}
        resolved[(namespace, name)] = None
        for kind, item in candidates.get(namespace, []):
            labels = (((item.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            if _selects(selector, labels):
                behaviour, problems = behaviour_of(item, kind, default_latency_ms)
                workload_name = item["metadata"].get("name", "")
                resolved[(namespace, name)] = Workload(
                    kind, namespace, workload_name, behaviour, problems, pod_name(workload_name, item)
                )
                break
    return resolved
