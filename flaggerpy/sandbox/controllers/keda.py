"""KEDA in the sandbox: the ``keda.sh/v1alpha1`` ScaledObject CRD and an operator that acts on ScaledObjects.

Installed only on demand (``Sandbox(keda=True)`` or ``flaggerpy sandbox --keda``), so a sandbox without it is a
cluster without KEDA. As with the HPA (see ``hpa``) there is no metrics pipeline: the operator keeps its target's
``spec.replicas`` within ``[minReplicaCount, maxReplicaCount]`` (defaults 0 and 100, as KEDA's) and never scales on
its own; while ``autoscaling.keda.sh/paused-replicas: "N"`` is set it holds the target at N, as KEDA does. It
reports what KEDA reports in the status: the target's kind, the Ready/Active/Fallback/Paused conditions and the
paused replica count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.registry import CRDS

log = get_logger("flaggerpy.sandbox.keda")

GROUP = "keda.sh"
VERSION = "v1alpha1"
PLURAL = "scaledobjects"
CRD_NAME = f"{PLURAL}.{GROUP}"
SCALED_OBJECTS = (GROUP, PLURAL)
PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 100
# Kinds with a scale subresource that the sandbox serves: (storage key, plural as KEDA reports it).
TARGET_KINDS = {
    "Deployment": (("apps", "deployments"), "deployments"),
    "ReplicaSet": (("apps", "replicasets"), "replicasets"),
}

_STRING = {"type": "string"}
_INT32 = {"type": "integer", "format": "int32"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_ANYTHING = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        node["required"] = list(required)
    if description:
        node["description"] = description
    return node


def _schema() -> dict[str, Any]:
    """A structural schema of the ScaledObject fields users write and KEDA reports (our own, not KEDA's text)."""
    trigger = _object({
        "type": {**_STRING, "description": "Scaler type, e.g. prometheus, cpu, cron."},
        "name": {**_STRING, "description": "Trigger name (Flagger's primaryScalerQueries key)."},
        "metadata": {**_STRING_MAP, "description": "Scaler settings, e.g. serverAddress, query, threshold."},
        "authenticationRef": _object({"name": _STRING, "kind": _STRING}, ("name",)),
        "metricType": _STRING,
        "useCachedMetrics": {"type": "boolean"},
    }, ("type",))
    condition = _object({"type": _STRING, "status": _STRING, "reason": _STRING, "message": _STRING},
                        ("type", "status"))
    spec = _object({
        "scaleTargetRef": _object({
            "apiVersion": _STRING, "kind": _STRING, "name": _STRING, "envSourceContainerName": _STRING,
        }, ("name",), "The workload to scale (a kind with a scale subresource; Deployment by default)."),
        "pollingInterval": _INT32,
        "cooldownPeriod": _INT32,
        "initialCooldownPeriod": _INT32,
        "idleReplicaCount": _INT32,
        "minReplicaCount": {**_INT32, "description": "Fewest replicas (default 0)."},
        "maxReplicaCount": {**_INT32, "description": "Most replicas (default 100)."},
        "advanced": _object({
            "restoreToOriginalReplicaCount": {"type": "boolean"},
            "horizontalPodAutoscalerConfig": _object({"name": _STRING, "behavior": _ANYTHING}),
            "scalingModifiers": _object({
                "formula": _STRING, "target": _STRING, "activationTarget": _STRING, "metricType": _STRING,
            }),
        }),
        "fallback": _object({"failureThreshold": _INT32, "replicas": _INT32, "behavior": _STRING},
                            ("failureThreshold", "replicas")),
        "triggers": {"type": "array", "items": trigger},
    }, ("scaleTargetRef", "triggers"))
    status = _object({
        "scaleTargetKind": _STRING,
        "scaleTargetGVKR": _object({"group": _STRING, "version": _STRING, "kind": _STRING, "resource": _STRING}),
        "originalReplicaCount": _INT32,
        "pausedReplicaCount": _INT32,
        "hpaName": _STRING,
        "lastActiveTime": {"type": "string", "format": "date-time"},
        "externalMetricNames": {"type": "array", "items": _STRING},
        "resourceMetricNames": {"type": "array", "items": _STRING},
        "conditions": {"type": "array", "items": condition},
        "health": _ANYTHING,
    })
    return _object({"apiVersion": _STRING, "kind": _STRING, "metadata": {"type": "object"}, "spec": spec,
                    "status": status}, ("spec",))


def _condition_column(name: str) -> dict[str, Any]:
    return {"name": name, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{name}")].status'}


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition of ScaledObjects the sandbox installs."""
    columns = [
        {"name": "ScaleTargetKind", "type": "string", "jsonPath": ".status.scaleTargetKind"},
        {"name": "ScaleTargetName", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicaCount"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicaCount"},
        _condition_column("Ready"),
        _condition_column("Active"),
        _condition_column("Fallback"),
        _condition_column("Paused"),
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": "ScaledObject", "listKind": "ScaledObjectList", "plural": PLURAL,
                      "singular": "scaledobject", "shortNames": ["so"]},
            "versions": [{"name": VERSION, "served": True, "storage": True, "schema": {"openAPIV3Schema": _schema()},
                          "subresources": {"status": {}}, "additionalPrinterColumns": columns}],
        },
    }


def install(cluster: Cluster) -> None:
    """Serve ScaledObjects (idempotent)."""
    if cluster.store.get(CRDS, "", CRD_NAME) is None:
        cluster.create_object(cluster.resource(*CRDS), "v1", "", crd())


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def paused_replicas(scaled_object: Mapping[str, Any]) -> int | None:
    """The replica count the annotation pauses the ScaledObject at, or None (absent or not a count: KEDA ignores
    a malformed value too)."""
    value = _mapping(_mapping(scaled_object.get("metadata")).get("annotations")).get(PAUSED_REPLICAS_ANNOTATION)
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def target_of(scaled_object: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of ``spec.scaleTargetRef`` (Deployment when the kind is not given)."""
    ref = _mapping(_mapping(scaled_object.get("spec")).get("scaleTargetRef"))
    return str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")


def desired_replicas(scaled_object: Mapping[str, Any], current: int) -> int:
    """What the operator holds the target at: the paused count, else ``current`` within the replica bounds."""
    paused = paused_replicas(scaled_object)
    if paused is not None:
        return paused
    spec = _mapping(scaled_object.get("spec"))
    low = _count(spec.get("minReplicaCount"), DEFAULT_MIN_REPLICAS)
    high = max(_count(spec.get("maxReplicaCount"), DEFAULT_MAX_REPLICAS), low)
    return min(max(current, low), high)


def _cond(type_: str, status: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": "True" if status else "False", "reason": reason, "message": message}


def status(scaled_object: Mapping[str, Any], target: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status KEDA would report for the ScaledObject and its current target (None: not found)."""
    kind, name = target_of(scaled_object)
    ref = _mapping(_mapping(scaled_object.get("spec")).get("scaleTargetRef"))
    api_version = str(ref.get("apiVersion") or "apps/v1")
    group, _, version = api_version.rpartition("/")
    known = TARGET_KINDS.get(kind)
    out: dict[str, Any] = {
        "scaleTargetKind": f"{api_version}.{kind}",
        "scaleTargetGVKR": {"group": group, "version": version, "kind": kind,
                            "resource": known[1] if known else f"{kind.lower()}s"},
        "hpaName": f"keda-hpa-{_mapping(scaled_object.get('metadata')).get('name', '')}",
    }
    paused = paused_replicas(scaled_object)
    if paused is not None:
        out["pausedReplicaCount"] = paused
    if target is None:
        ready = _cond("Ready", False, "ScaledObjectCheckFailed", f"Target resource {kind}/{name} doesn't exist")
        active = _cond("Active", False, "ScalerNotActive", "Scaling is not performed because the target is missing")
    else:
        replicas = _count(_mapping(target.get("spec")).get("replicas"), 1)
        ready = _cond("Ready", True, "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling")
        if paused is None and replicas > 0:
            active = _cond("Active", True, "ScalerActive", "Scaling is performed because triggers are active")
        else:
            active = _cond("Active", False, "ScalerNotActive", "Scaling is not performed because triggers are not "
                                                               "active")
    if paused is None:
        paused_cond = _cond("Paused", False, "ScaledObjectUnpaused", "ScaledObject is unpaused")
    else:
        paused_cond = _cond("Paused", True, "ScaledObjectPaused", f"ScaledObject is paused at {paused} replicas")
    out["conditions"] = [
        ready, active, _cond("Fallback", False, "NoFallbackFound", "No fallbacks are active on this scaled object"),
        paused_cond,
    ]
    return out


class KedaOperator:
    """An in-sandbox controller (``SandboxController``) playing KEDA's operator for ScaledObjects."""

    name = "keda"

    def __init__(self) -> None:
        self._cluster: Cluster | None = None
        # (target storage key, namespace, target name) -> names of the ScaledObjects scaling it, and back.
        self._by_target: dict[tuple[tuple[str, str], str, str], set[str]] = {}
        self._target_of: dict[tuple[str, str], tuple[tuple[str, str], str, str]] = {}

    async def run(self, cluster: Cluster) -> None:
        """Act on every ScaledObject, then on each change of a ScaledObject or of a workload one scales."""
        self._cluster = cluster
        for obj in list(cluster.store.items(SCALED_OBJECTS)):
            self._index(obj, deleted=False)
            await self._safely_reconcile(obj)
        async for event in cluster.subscribe_events():
            if event.key == SCALED_OBJECTS:
                self._index(event.obj, deleted=event.type == "DELETED")
                if event.type != "DELETED":
                    await self._safely_reconcile(event.obj)
                continue
            meta = event.obj.get("metadata") or {}
            names = self._by_target.get((event.key, meta.get("namespace", ""), meta.get("name", "")))
            for name in list(names or ()):
                current = cluster.store.get(SCALED_OBJECTS, meta.get("namespace", ""), name)
                if current is not None:
                    await self._safely_reconcile(current)

    def _index(self, obj: Mapping[str, Any], deleted: bool) -> None:
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        previous = self._target_of.pop(ident, None)
        if previous is not None:
            self._by_target.get(previous, set()).discard(ident[1])
        kind, name = target_of(obj)
        known = TARGET_KINDS.get(kind)
        if not deleted and known is not None and name:
            target = (known[0], ident[0], name)
            self._target_of[ident] = target
            self._by_target.setdefault(target, set()).add(ident[1])

    async def _safely_reconcile(self, obj: Mapping[str, Any]) -> None:
        """A ScaledObject the operator cannot act on must not stop it (it reports, it does not crash)."""
        try:
            await self._reconcile(obj)
        except (StatusError, TypeError, ValueError, KeyError) as exc:
            log.warning("cannot act on ScaledObject", object=obj["metadata"].get("name"), error=str(exc))

    async def _reconcile(self, obj: Mapping[str, Any]) -> None:
        cluster = self._cluster
        if cluster is None or obj["metadata"].get("deletionTimestamp"):
            return
        namespace = obj["metadata"].get("namespace", "")
        kind, name = target_of(obj)
        known = TARGET_KINDS.get(kind)
        target = cluster.store.get(known[0], namespace, name) if known is not None and name else None
        if target is not None and known is not None:
            current = _count(_mapping(target.get("spec")).get("replicas"), 1)
            wanted = desired_replicas(obj, current)
            if wanted != current:
                target = await cluster.patch(*known[0], namespace, name, {"spec": {"replicas": wanted}})
        latest = cluster.store.get(SCALED_OBJECTS, namespace, obj["metadata"]["name"])
        if latest is None:
            return
        wanted_status = status(latest, target)
        if latest.get("status") != wanted_status:
            cluster.commit_update(cluster.resource(*SCALED_OBJECTS), latest, dict(latest, status=wanted_status))
