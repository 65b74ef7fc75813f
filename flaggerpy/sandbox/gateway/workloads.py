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
    error_rate, latency, problems = annotated_behaviour(annotations, default_latency_ms,
                                                        "spec.template.metadata.annotations")
    return Behaviour(error_rate, latency, _ready_replicas(workload, kind) > 0), problems


def annotated_behaviour(annotations: dict, default_latency_ms: float,
                        where: str) -> tuple[float, float, tuple[str, ...]]:
    """(error rate, mean latency ms, problems) asked for by ``annotations`` (a pod template's, or a pod's, whose
    annotations are its template's); ``where`` names the annotations' field in problems."""
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
            problems.append(f"{where}[{ERROR_RATE_ANNOTATION}]: {raw_rate!r} must be a number between 0 and 1")
    latency = default_latency_ms
    raw_latency = annotations.get(LATENCY_ANNOTATION)
    if raw_latency is not None:
        try:
            latency = parse_duration_ms(str(raw_latency))
        except BehaviourError as exc:
            problems.append(f"{where}[{LATENCY_ANNOTATION}]: {exc}")
    return error_rate, latency, tuple(problems)


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


_KIND_ORDER = {"Deployment": 0, "DaemonSet": 1}
ServiceKey = tuple[str, str]  # (namespace, name)
WorkloadKey = tuple[str, str, str]  # (namespace, kind, name)


def _template_labels(workload: dict) -> dict:
    return (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


class WorkloadIndex:
    """Every Service (namespace, name) → the workload its selector reaches, or None; kept current per change.

    When several workloads match, the oldest wins (then by name) so the choice is stable. Services and workloads
    are indexed by label pair, so a change re-resolves only the Services it can affect, however many there are.
    """

    def __init__(self, default_latency_ms: float) -> None:
        self._default_latency_ms = default_latency_ms
        self.resolved: dict[ServiceKey, Workload | None] = {}
        self._selectors: dict[ServiceKey, dict] = {}
        self._workloads: dict[WorkloadKey, dict] = {}
        # (namespace, label, value) → workloads whose pod template carries it / Services whose selector needs it
        self._workloads_by_label: dict[tuple[str, str, str], set[WorkloadKey]] = {}
        self._services_by_label: dict[tuple[str, str, str], set[ServiceKey]] = {}

    def clear(self) -> None:
        """Forget everything (before a full resync)."""
        self.resolved.clear()
        self._selectors.clear()
        self._workloads.clear()
        self._workloads_by_label.clear()
        self._services_by_label.clear()

    def put_service(self, service: dict) -> ServiceKey:
        """Add or update a Service; returns its key."""
        meta = service.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        self._unindex_service(key)
        selector = (service.get("spec") or {}).get("selector") or {}
        if not isinstance(selector, dict):
            selector = {}
        self._selectors[key] = selector
        for label, value in selector.items():
            self._services_by_label.setdefault((key[0], label, str(value)), set()).add(key)
        self._resolve(key)
        return key

    def delete_service(self, namespace: str, name: str) -> None:
        """Forget a Service."""
        self._unindex_service((namespace, name))
        self.resolved.pop((namespace, name), None)

    def put_workload(self, kind: str, workload: dict) -> set[ServiceKey]:
        """Add or update a Deployment/DaemonSet; returns the Services re-resolved."""
        meta = workload.get("metadata") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        old = self._workloads.get(key)
        affected = self._selecting(key[0], _template_labels(old)) if old is not None else set()
        self._unindex_workload(key)
        self._workloads[key] = workload
        labels = _template_labels(workload)
        for label, value in labels.items():
            self._workloads_by_label.setdefault((key[0], label, str(value)), set()).add(key)
        affected |= self._selecting(key[0], labels)
        for service in affected:
            self._resolve(service)
        return affected

    def delete_workload(self, kind: str, namespace: str, name: str) -> set[ServiceKey]:
        """Forget a Deployment/DaemonSet; returns the Services re-resolved."""
        key = (namespace, kind, name)
        old = self._workloads.get(key)
        if old is None:
            return set()
        self._unindex_workload(key)
        affected = self._selecting(namespace, _template_labels(old))
        for service in affected:
            self._resolve(service)
        return affected

    def _unindex_service(self, key: ServiceKey) -> None:
        for label, value in self._selectors.pop(key, {}).items():
            services = self._services_by_label.get((key[0], label, str(value)))
            if services is not None:
                services.discard(key)
                if not services:
                    del self._services_by_label[(key[0], label, str(value))]

    def _unindex_workload(self, key: WorkloadKey) -> None:
        old = self._workloads.pop(key, None)
        for label, value in _template_labels(old or {}).items():
            workloads = self._workloads_by_label.get((key[0], label, str(value)))
            if workloads is not None:
                workloads.discard(key)
                if not workloads:
                    del self._workloads_by_label[(key[0], label, str(value))]

    def _selecting(self, namespace: str, labels: dict) -> set[ServiceKey]:
        """Services in ``namespace`` whose whole selector ``labels`` satisfy."""
        found: set[ServiceKey] = set()
        for label, value in labels.items():
            for service in self._services_by_label.get((namespace, label, str(value)), ()):
                if service not in found and _selects(self._selectors.get(service, {}), labels):
                    found.add(service)
        return found

    def _resolve(self, service: ServiceKey) -> None:
        namespace = service[0]
        selector = self._selectors.get(service, {})
        best: tuple[tuple[str, str, int], WorkloadKey] | None = None
        if selector:
            label, value = next(iter(selector.items()))
            for key in self._workloads_by_label.get((namespace, label, str(value)), ()):
                item = self._workloads[key]
                if not _selects(selector, _template_labels(item)):
                    continue
                meta = item.get("metadata") or {}
                rank = (meta.get("creationTimestamp") or "", meta.get("name", ""), _KIND_ORDER.get(key[1], 2))
                if best is None or rank < best[0]:
                    best = (rank, key)
        if best is None:
            self.resolved[service] = None
            return
        _, (_, kind, name) = best
        item = self._workloads[best[1]]
        behaviour, problems = behaviour_of(item, kind, self._default_latency_ms)
        self.resolved[service] = Workload(kind, namespace, name, behaviour, problems, pod_name(name, item))
