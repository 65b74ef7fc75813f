"""The workload simulator: Deployments and DaemonSets become ready after a delay, like kube-controller-manager
and kubelets would make them; HorizontalPodAutoscalers report a status (see ``hpa``).

Per object, in ``metadata.annotations`` or the pod template's annotations (the template wins):
``sandbox.flaggerpy.io/ready-delay: "2s"`` overrides the delay, ``sandbox.flaggerpy.io/ready: "false"`` keeps the
pods from ever becoming ready (a crash loop); after ``spec.progressDeadlineSeconds`` (default 600) the Deployment's
Progressing condition turns False with reason ProgressDeadlineExceeded.

A change of the pod template is a rolling update: until the new pods are ready, the pods of the previous template
keep serving (``readyReplicas`` stays at what was ready, ``updatedReplicas`` is 0), as a Deployment's old
ReplicaSet does. A crash-looping new template therefore never takes the old pods down.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.jsonio import object_field
from flaggerpy.sandbox.apiserver.selectors import match_label_selector
from flaggerpy.sandbox.clock import now
from flaggerpy.sandbox.controllers import hpa

log = get_logger("flaggerpy.sandbox.workloads")

READY_DELAY_ANNOTATION = "sandbox.flaggerpy.io/ready-delay"
READY_ANNOTATION = "sandbox.flaggerpy.io/ready"
DEPLOYMENTS = ("apps", "deployments")
DAEMONSETS = ("apps", "daemonsets")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float | None:
    """Seconds in ``"250ms"``, ``"2s"``, ``"1.5"``, ``"1m"``; None when unparseable."""
    m = _DURATION_RE.match(text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


@dataclass
class WorkloadSettings:
    """How the simulated cluster behaves."""

    ready_delay: float = 0.2
    """Seconds from a spec change to all replicas ready."""
    nodes: int = 1
    """Simulated nodes (a DaemonSet runs one pod per matching node)."""


def _annotation(obj: dict[str, Any], key: str) -> str | None:
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    for source in (template.get("annotations") or {}, obj["metadata"].get("annotations") or {}):
        if isinstance(source, dict) and key in source:
            return str(source[key])
    return None


def _ready_count(key: tuple[str, str], status: dict[str, Any]) -> int:
    """Pods the last written status reported ready (0 when absent or malformed)."""
    value = status.get("numberReady" if key == DAEMONSETS else "readyReplicas")
    return value if isinstance(value, int) and value > 0 else 0


def _condition(kind: str, status: str, reason: str, message: str, stamp: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp}


def _as_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


class WorkloadSimulator:
    """An in-sandbox controller (``SandboxController``) that writes Deployment and DaemonSet status."""

    name = "workloads"

    def __init__(self, settings: WorkloadSettings | None = None) -> None:
        self.settings = settings or WorkloadSettings()
        self._timers: dict[tuple[tuple[str, str], str, str], asyncio.TimerHandle] = {}
        # The pod template each workload last rolled out, to tell a rolling update from a scale.
        self._templates: dict[tuple[tuple[str, str], str, str], str] = {}
        # (target storage key, namespace, target name) -> {(namespace, name) of HPAs scaling it}
        self._hpa_targets: dict[tuple[tuple[str, str], str, str], set[tuple[str, str]]] = {}
        self._hpa_target_of: dict[tuple[str, str], tuple[tuple[str, str], str, str]] = {}
        self._cluster: Cluster | None = None

    def node_labels(self) -> list[dict[str, str]]:
        """Labels of the simulated nodes (DaemonSets schedule by nodeSelector against these)."""
        return [{"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                 "kubernetes.io/hostname": f"sandbox-node-{i}"} for i in range(self.settings.nodes)]

    async def run(self, cluster: Cluster) -> None:
        """Follow Deployments and DaemonSets until cancelled."""
        self._cluster = cluster
        try:
            for key in (DEPLOYMENTS, DAEMONSETS):
                for obj in cluster.store.items(key):
                    self._safely_observe(key, obj)
            for obj in cluster.store.items(hpa.HPAS):
                self._index_hpa(obj, False)
                self._update_hpa(obj)
            async for event in cluster.subscribe_events():
                if event.key in (DEPLOYMENTS, DAEMONSETS):
                    if event.type == "DELETED":
                        self._cancel(event.key, event.obj)
                        self._templates.pop(self._ident(event.key, event.obj), None)
                    else:
                        self._safely_observe(event.key, event.obj)
                    self._hpas_of(event.key, event.obj)
                elif event.key == hpa.HPAS:
                    self._index_hpa(event.obj, event.type == "DELETED")
                    if event.type != "DELETED":
                        self._update_hpa(event.obj)
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    def _safely_observe(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        """One malformed object (built-in kinds are not schema-checked) must not stop the simulator."""
        try:
            self._observe(key, obj)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            log.warning("cannot simulate malformed workload", object=obj["metadata"].get("name"), error=repr(exc))

    def _update_hpa(self, obj: dict[str, Any]) -> None:
        """Write the HPA's status when it is stale (new generation, or the target's replicas changed)."""
        cluster = self._cluster
        if cluster is None:
            return
        target_ref = hpa.target_key(obj)
        target = None
        if target_ref is not None:
            target = cluster.store.get(target_ref[0], obj["metadata"].get("namespace", ""), target_ref[1])
        wanted = hpa.status(obj, target)
        current = object_field(obj, "status")
        fields = ("observedGeneration", "currentReplicas", "desiredReplicas")
        if all(current.get(f) == wanted[f] for f in fields):
            return
        rt = cluster.registry.get(*hpa.HPAS)
        if rt is not None:
            cluster.commit_update(rt, obj, dict(obj, status=wanted))

    def _index_hpa(self, obj: dict[str, Any], deleted: bool) -> None:
        """Remember which HPAs scale which workload, so a workload change finds its HPAs in O(1)."""
        ident = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        previous = self._hpa_target_of.pop(ident, None)
        if previous is not None:
            self._hpa_targets.get(previous, set()).discard(ident)
        target_ref = hpa.target_key(obj)
        if not deleted and target_ref is not None:
            target = (target_ref[0], ident[0], target_ref[1])
            self._hpa_target_of[ident] = target
            self._hpa_targets.setdefault(target, set()).add(ident)

    def _hpas_of(self, key: tuple[str, str], target: dict[str, Any]) -> None:
        """Refresh the HPAs that scale a workload that just changed."""
        cluster = self._cluster
        namespace = target["metadata"].get("namespace", "")
        hpa_names = self._hpa_targets.get((key, namespace, target["metadata"]["name"]))
        if cluster is None or not hpa_names:
            return
        for hpa_namespace, hpa_name in list(hpa_names):
            obj = cluster.store.get(hpa.HPAS, hpa_namespace, hpa_name)
            if obj is not None:
                self._update_hpa(obj)

    def _ident(self, key: tuple[str, str], obj: dict[str, Any]) -> tuple[tuple[str, str], str, str]:
        return (key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def _cancel(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        timer = self._timers.pop(self._ident(key, obj), None)
        if timer is not None:
            timer.cancel()

    def _desired(self, key: tuple[str, str], obj: dict[str, Any]) -> int:
        spec = object_field(obj, "spec")
        if key == DEPLOYMENTS:
            return _as_int(spec.get("replicas"), 1)
        pod_spec = ((spec.get("template") or {}).get("spec") or {}) if isinstance(spec.get("template"), dict) else {}
        selector = pod_spec.get("nodeSelector") if isinstance(pod_spec, dict) else None
        if not isinstance(selector, dict):
            return self.settings.nodes
        return sum(1 for labels in self.node_labels() if match_label_selector({"matchLabels": selector}, labels))

    def _delay(self, obj: dict[str, Any]) -> float:
        text = _annotation(obj, READY_DELAY_ANNOTATION)
        if text is not None:
            parsed = parse_duration(text)
            if parsed is not None:
                return parsed
            log.warning("ignoring unparseable ready-delay annotation", object=obj["metadata"]["name"], value=text)
        return self.settings.ready_delay

    def _observe(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        """On a new generation, report a rollout in progress and schedule readiness."""
        status = object_field(obj, "status")
        generation = obj["metadata"].get("generation", 1)
        if status.get("observedGeneration") == generation:
            return
        self._cancel(key, obj)
        ident = self._ident(key, obj)
        template = json.dumps((obj.get("spec") or {}).get("template"), sort_keys=True, default=str)
        rolled_out = self._templates.get(ident)
        self._templates[ident] = template
        desired = self._desired(key, obj)
        never_ready = (_annotation(obj, READY_ANNOTATION) or "").lower() == "false"
        if desired == 0:
            self._write(key, obj, self._status(key, obj, desired, desired, "ready"))
            return
        # Pods that were ready keep serving while the rollout runs (at most the desired count: a scale-down is
        # immediate); only a new template has to replace them, a scale keeps them as updated pods.
        still_ready = min(_ready_count(key, status), desired)
        updated = desired if template == rolled_out else 0
        self._write(key, obj, self._status(key, obj, desired, still_ready, "progressing", updated=updated))
        loop = asyncio.get_running_loop()
        if never_ready:
            if key == DEPLOYMENTS:
                deadline = _as_int((obj.get("spec") or {}).get("progressDeadlineSeconds"), 600)
                self._timers[ident] = loop.call_later(deadline, self._fire, key, ident, generation, "deadline")
            return
        self._timers[ident] = loop.call_later(self._delay(obj), self._fire, key, ident, generation, "ready")

    def _fire(self, key: tuple[str, str], ident: tuple[tuple[str, str], str, str], generation: int, what: str) -> None:
        self._timers.pop(ident, None)
        cluster = self._cluster
        if cluster is None:
            return
        obj = cluster.store.get(key, ident[1], ident[2])
        if obj is None or obj["metadata"].get("generation", 1) != generation:
            return
        desired = self._desired(key, obj)
        if what == "ready":
            self._write(key, obj, self._status(key, obj, desired, desired, what))
            return
        # Past the deadline the new pods still crash; the old ones still serve.
        status = object_field(obj, "status")
        self._write(key, obj, self._status(key, obj, desired, _ready_count(key, status), what, updated=0))

    def _status(
        self, key: tuple[str, str], obj: dict[str, Any], desired: int, ready: int, phase: str,
        updated: int | None = None,
    ) -> dict[str, Any]:
        generation = obj["metadata"].get("generation", 1)
        updated = desired if updated is None else updated
        if key == DAEMONSETS:
            return {"observedGeneration": generation, "desiredNumberScheduled": desired,
                    "currentNumberScheduled": desired, "updatedNumberScheduled": updated, "numberReady": ready,
                    "numberAvailable": ready, "numberUnavailable": desired - ready, "numberMisscheduled": 0}
        stamp = now()
        name = obj["metadata"]["name"]
        if phase == "ready":
            progressing = _condition("Progressing", "True", "NewReplicaSetAvailable",
                                     f'ReplicaSet "{name}" has successfully progressed.', stamp)
        elif phase == "deadline":
            progressing = _condition("Progressing", "False", "ProgressDeadlineExceeded",
                                     f'ReplicaSet "{name}" has timed out progressing.', stamp)
        else:
            progressing = _condition("Progressing", "True", "ReplicaSetUpdated",
                                     f'ReplicaSet "{name}" is progressing.', stamp)
        if ready >= desired:
            available = _condition("Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability.", stamp)
        else:
            available = _condition("Available", "False", "MinimumReplicasUnavailable",
                                   "Deployment does not have minimum availability.", stamp)
        status: dict[str, Any] = {"observedGeneration": generation, "replicas": desired,
                                  "updatedReplicas": updated, "readyReplicas": ready,
                                  "availableReplicas": ready, "unavailableReplicas": desired - ready,
                                  "conditions": [available, progressing]}
        # kube-apiserver omits zero counts (omitempty); clients must cope with their absence, so do the same.
        return {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}

    def _write(self, key: tuple[str, str], obj: dict[str, Any], status: dict[str, Any]) -> None:
        cluster = self._cluster
        if cluster is None:
            return
        current = cluster.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or current["metadata"].get("generation") != obj["metadata"].get("generation"):
            return
        rt = cluster.registry.get(*key)
        if rt is None:
            return
        try:
            cluster.commit_update(rt, current, dict(current, status=status))
        except StatusError as exc:
            log.warning("could not write workload status", object=obj["metadata"]["name"], error=str(exc))
