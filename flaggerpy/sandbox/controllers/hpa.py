"""The status a HorizontalPodAutoscaler reports, simulated without metrics.

The sandbox has no metrics pipeline, so the autoscaler keeps the target's replica count within
``[minReplicas, maxReplicas]`` as its desired count and never scales by itself; a target scaled to zero disables
scaling, as on a cluster.
"""

from __future__ import annotations

from typing import Any

from flaggerpy.sandbox.apiserver.jsonio import object_field
from flaggerpy.sandbox.clock import now

HPAS = ("autoscaling", "horizontalpodautoscalers")
TARGET_KINDS = {"Deployment": ("apps", "deployments"), "ReplicaSet": ("apps", "replicasets")}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def target_key(hpa: dict[str, Any]) -> tuple[tuple[str, str], str] | None:
    """The (storage key, name) of the HPA's scale target, or None when it is not a kind the sandbox scales."""
    spec = object_field(hpa, "spec")
    ref = object_field(spec, "scaleTargetRef")
    key = TARGET_KINDS.get(str(ref.get("kind")))
    name = ref.get("name")
    return (key, name) if key is not None and isinstance(name, str) else None


def status(hpa: dict[str, Any], target: dict[str, Any] | None) -> dict[str, Any]:
    """The HPA status for the current target (None when the target does not exist)."""
    spec = object_field(hpa, "spec")
    low, high = _int(spec.get("minReplicas"), 1), _int(spec.get("maxReplicas"), 1)
    stamp = now()
    result: dict[str, Any] = {"observedGeneration": hpa["metadata"].get("generation", 1)}
    if target is None:
        result.update(currentReplicas=0, desiredReplicas=0, conditions=[
            {"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
             "message": "the HPA controller was unable to get the target's current scale", "lastTransitionTime": stamp},
        ])
        return result
    current = _int((target.get("spec") or {}).get("replicas"), 1)
    if current == 0:
        active = {"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled",
                  "message": "scaling is disabled since the replica count of the target is zero",
                  "lastTransitionTime": stamp}
        desired = 0
    else:
        active = {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                  "message": "the HPA was able to successfully calculate a replica count", "lastTransitionTime": stamp}
        desired = min(max(current, low), max(high, low))
    result.update(currentReplicas=current, desiredReplicas=desired, conditions=[
        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
         "message": "recommended size matches current size", "lastTransitionTime": stamp},
        active,
    ])
    return result
