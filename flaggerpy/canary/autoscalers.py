"""The target's autoscaler (HorizontalPodAutoscaler or KEDA ScaledObject) seen through Flagger's eyes, as pure
functions on plain dicts.

Flagger gives the primary its own copy of the autoscaler (``<name>-primary``, scaling ``<target>-primary``) and,
for a ScaledObject, keeps the target's copy paused at zero replicas while the canary is scaled down: KEDA would
otherwise scale the canary straight back up. The checks here turn a reference that cannot work (the autoscaler
scales another workload, ``primaryScalerQueries`` names a trigger the ScaledObject lacks) into an error naming
the Canary field, before anything is written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.jsondata import mapping
from flaggerpy.canary import workload as wl

HPA = "HorizontalPodAutoscaler"
SCALED_OBJECT = "ScaledObject"

# KEDA holds a ScaledObject's target at this many replicas, and stops autoscaling it, while the annotation is set.
PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
# KEDA's other pause switch (autoscaling stops, replicas stay where they are).
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused"
# The pause of the target's copy must never reach the primary's: it would hold the primary at zero replicas.
_NOT_COPIED = (PAUSED_REPLICAS_ANNOTATION, PAUSED_ANNOTATION)
_EVERY_LABEL = ("*",)


class AutoscalerError(wl.WorkloadError):
    """``spec.autoscalerRef`` points at an autoscaler that cannot be used; the message names the field.

    The canary waits (a Halted condition and a Warning Event) until the autoscaler is fixed, as for a missing target.
    """

    reason = "InvalidAutoscaler"


class AutoscalerNotFound(AutoscalerError):
    """The referenced autoscaler does not exist (yet): the canary waits for it, as Flagger does."""

    reason = "AutoscalerNotFound"


def scale_target(scaler: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of the workload an HPA or ScaledObject scales (``spec.scaleTargetRef``; kind defaults to
    Deployment, as KEDA's does)."""
    spec = mapping(scaler.get("spec"))
    ref = mapping(spec.get("scaleTargetRef"))
    return str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")


def scales(scaler: Mapping[str, Any], kind: str, name: str) -> bool:
    """Whether the autoscaler scales the workload ``kind``/``name`` (of its own namespace)."""
    return scale_target(scaler) == (kind, name)


def check_target(scaler_kind: str, scaler: Mapping[str, Any], target_kind: str, target_name: str) -> None:
    """Raise :class:`AutoscalerError` unless the autoscaler scales the Canary's target."""
    kind, name = scale_target(scaler)
    if (kind, name) != (target_kind, target_name):
        meta = scaler.get("metadata") or {}
        raise AutoscalerError(
            f"spec.autoscalerRef.name: {scaler_kind} {meta.get('namespace', '')}/{meta.get('name', '')} scales "
            f"{kind}/{name or '<none>'} (its spec.scaleTargetRef), not the canary's target {target_kind}/{target_name}"
        )


def triggers(scaled_object: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ScaledObject's ``spec.triggers`` (malformed entries left out)."""
    spec = mapping(scaled_object.get("spec"))
    found = spec.get("triggers")
    return [t for t in found if isinstance(t, Mapping)] if isinstance(found, list) else []


def check_queries(queries: Mapping[str, str] | None, scaled_object: Mapping[str, Any]) -> None:
    """Raise :class:`AutoscalerError` when ``primaryScalerQueries`` names a trigger the ScaledObject does not have
    (that query would silently never reach the primary)."""
    if not queries:
        return
    names = [str(t["name"]) for t in triggers(scaled_object) if t.get("name")]
    unknown = sorted(set(queries) - set(names))
    if not unknown:
        return
    meta = scaled_object.get("metadata") or {}
    have = ", ".join(names) if names else "none (name the triggers to give them primary queries)"
    raise AutoscalerError(
        "; ".join(f"spec.autoscalerRef.primaryScalerQueries.{name}: ScaledObject "
                  f"{meta.get('namespace', '')}/{meta.get('name', '')} has no trigger named {name!r} "
                  f"(its named triggers: {have})" for name in unknown)
    )


def primary_query(query: str, target_name: str) -> str:
    """A trigger query rewritten for the primary: ``<target>`` and ``<target>-canary`` become ``<target>-primary``.

    Flagger's best effort when ``primaryScalerQueries`` is not given; a name that already says ``-primary`` is left
    alone rather than doubled.
    """
    primary = wl.primary_name(target_name)
    pattern = re.escape(target_name) + r"(?:-canary)?(?!-primary)"
    return re.sub(pattern, lambda _: primary, query)


def _primary_triggers(found: list[Any], queries: Mapping[str, str] | None, target_name: str) -> list[Any]:
    out = copy.deepcopy(found)
    for trigger in out:
        if not isinstance(trigger, dict):
            continue
        metadata = trigger.get("metadata")
        if queries is not None:
            # Only the triggers named in primaryScalerQueries change; the others keep their query, as in Flagger.
            name = trigger.get("name")
            if isinstance(name, str) and name in queries:
                trigger["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "query": queries[name]}
        elif isinstance(metadata, dict) and isinstance(metadata.get("query"), str):
            metadata["query"] = primary_query(metadata["query"], target_name)
    return out


def _kept(values: Mapping[str, str] | None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """Labels or annotations worth copying: not Flux's own (Flux would prune the copy), not ``drop``."""
    return {k: v for k, v in wl.included_labels(values, _EVERY_LABEL).items() if k not in drop}


def build_primary_scaled_object(
    scaled_object: Mapping[str, Any],
    canary: Mapping[str, Any],
    target_name: str,
    queries: Mapping[str, str] | None = None,
    replicas: tuple[int | None, int | None] = (None, None),
) -> dict[str, Any]:
    """The ``<so>-primary`` ScaledObject: the target's spec scaling ``<target>-primary``, owned by the Canary.

    ``queries`` is ``primaryScalerQueries`` (trigger name → query); without it every trigger's ``query`` is
    rewritten by :func:`primary_query`. ``replicas`` overrides (minReplicaCount, maxReplicaCount). A named KEDA HPA
    (``advanced.horizontalPodAutoscalerConfig.name``) gets a ``-primary`` name so the two copies do not share one.
    """
    meta, spec = wl.primary_scaler(scaled_object, canary, target_name, replicas,
                                   ("minReplicaCount", "maxReplicaCount"))
    for field_name, drop in (("labels", ()), ("annotations", _NOT_COPIED)):
        kept = _kept(meta.get(field_name), drop)
        if kept:
            meta[field_name] = kept
        else:
            meta.pop(field_name, None)
    hpa_config = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    if hpa_config.get("name"):
        hpa_config["name"] = wl.primary_name(hpa_config["name"])
    if "triggers" in spec:
        spec["triggers"] = _primary_triggers(spec["triggers"], queries, target_name)
    return {"apiVersion": scaled_object.get("apiVersion", "keda.sh/v1alpha1"), "kind": SCALED_OBJECT,
            "metadata": meta, "spec": spec}


def pause_patch(scaled_object: Mapping[str, Any], replicas: int | None) -> dict[str, Any] | None:
    """The merge patch that pauses the ScaledObject at ``replicas`` (None: resumes it), or None when it already is.

    Resuming removes the annotation whatever count it held, as Flagger does before the canary is scaled up.
    """
    annotations = (scaled_object.get("metadata") or {}).get("annotations") or {}
    wanted = None if replicas is None else str(replicas)
    if annotations.get(PAUSED_REPLICAS_ANNOTATION) == wanted:
        return None
    return {"metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: wanted}}}
