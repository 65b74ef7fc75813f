"""The target workload (Deployment or DaemonSet) seen through Flagger's eyes, as pure functions on plain dicts.

Everything here is deterministic and free of I/O so the reconciler can decide from informer-cache objects and the
tests can hold each rule on its own: the ``-primary`` copy of the target, the revision hash of a pod template, the
ConfigMaps/Secrets a pod template depends on and their checksums, the ``-primary`` copies of those configs and of
the HPA, and whether a workload is ready.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PRIMARY_SUFFIX = "-primary"

# Flagger looks for the workload's identity label in this order (its --selector-labels default).
SELECTOR_LABELS: tuple[str, ...] = ("app", "name", "app.kubernetes.io/name")

# Flux's own labels (kustomize.toolkit.fluxcd.io/...) mark what Flux applied: on a primary Flux never applied they
# would make Flux prune it, so Flagger never copies them, whatever the prefixes.
_TOOLKIT_MARKER = "toolkit.fluxcd.io"

# DaemonSets have no replica count: Flagger scales one to zero with a nodeSelector no node matches.
SCALE_TO_ZERO_KEY = "flagger.app/scale-to-zero"

# The primary's pod template carries the id of the revision it runs (Flagger's annotation name).
REVISION_ID_ANNOTATION = "flagger-id"

# Where a cached Secret keeps the checksum of the data it no longer holds (not a Kubernetes field name).
DIGEST_FIELD = "flaggerpy.io/dataChecksum"
_DIGEST_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations",
                    "ownerReferences", "deletionTimestamp", "creationTimestamp")
# A ConfigMap/Secret carrying this annotation is left alone by config tracking (Flagger's opt-out).
CONFIG_TRACKING_ANNOTATION = "flagger.app/config-tracking"

# Metadata the apiserver or other controllers own: copying it onto a new object would be rejected or lie.
_SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_SERVER_ANNOTATIONS = (
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.daemonset.template.generation",
)


class WorkloadError(ValueError):
    """The target cannot be managed as written (e.g. no selector label); the message names the field."""

    reason = "InvalidTarget"
    """The reason of the Halted condition and Warning Event the canary waits with."""


def revision_id(spec_hash: str, config_checksums: Mapping[str, str]) -> str:
    """A UUID-shaped id of one revision (pod template hash and tracked config checksums).

    Flagger writes a random UUID; a derived one changes exactly when the revision does, so the primary rolls once
    per promotion, and a controller restarted mid-promotion writes the same id again instead of rolling twice.
    """
    material = json.dumps({"spec": spec_hash, "configs": dict(config_checksums)}, sort_keys=True).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(material).digest()[:16], version=4))


def primary_name(name: str) -> str:
    """The name of the primary copy of ``name`` (workload, Service, ConfigMap, Secret or HPA)."""
    return f"{name}{PRIMARY_SUFFIX}"


def selector_label(target: Mapping[str, Any], labels: tuple[str, ...] = SELECTOR_LABELS) -> tuple[str, str]:
    """The (key, value) of the label that identifies the target's pods: the first of ``labels`` it selects on."""
    match_labels = target.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    for key in labels:
        if key in match_labels:
            return key, str(match_labels[key])
    kind = target.get("kind", "Deployment")
    name = target.get("metadata", {}).get("name", "")
    raise WorkloadError(
        f"{kind} {name}: spec.selector.matchLabels: needs one of the labels {', '.join(labels)}"
    )


def included_labels(labels: Mapping[str, str] | None, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The labels whose key starts with one of ``prefixes`` (``*`` matches all); never Flux's own labels."""
    return {
        key: value
        for key, value in (labels or {}).items()
        if _TOOLKIT_MARKER not in key and any(p == "*" or key.startswith(p) for p in prefixes)
    }


def _relabel(labels: Mapping[str, str] | None, key: str, value: str) -> dict[str, str]:
    out = dict(labels or {})
    out[key] = value
    return out


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to ``owner`` (the Canary) so garbage collection follows it."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", "flagger.app/v1beta1"),
        "kind": owner.get("kind", "Canary"),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def clean_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` without the fields the apiserver and other controllers own."""
    out = {k: copy.deepcopy(v) for k, v in meta.items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (out.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    if annotations:
        out["annotations"] = annotations
    else:
        out.pop("annotations", None)
    return out


def _without_scale_to_zero(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` without the scale-to-zero nodeSelector (it is not part of the revision).

    Removing the key by merge patch can leave an empty ``nodeSelector``; empty and absent mean the same.
    """
    out = copy.deepcopy(dict(template))
    pod = out.get("spec")
    if isinstance(pod, dict) and "nodeSelector" in pod:
        selector = {k: v for k, v in (pod["nodeSelector"] or {}).items() if k != SCALE_TO_ZERO_KEY}
        if selector:
            pod["nodeSelector"] = selector
        else:
            pod.pop("nodeSelector")
    return out


def is_scaled_to_zero(workload: Mapping[str, Any]) -> bool:
    """Whether a DaemonSet carries the scale-to-zero nodeSelector."""
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return SCALE_TO_ZERO_KEY in (pod.get("nodeSelector") or {})


def primary_template(target: Mapping[str, Any], config_renames: Mapping[str, str] | None = None,
                     selector_labels: tuple[str, ...] = SELECTOR_LABELS) -> dict[str, Any]:
    """The target's pod template relabelled for the primary, with tracked config refs renamed to their copies."""
    key, value = selector_label(target, selector_labels)
    template = _without_scale_to_zero(target["spec"]["template"])
    meta = template.setdefault("metadata", {})
    meta["labels"] = _relabel(meta.get("labels"), key, primary_name(value))
    if config_renames:
        rename_config_refs(template.get("spec", {}), config_renames)
    return template


def build_primary(
    target: Mapping[str, Any],
    canary: Mapping[str, Any],
    config_renames: Mapping[str, str] | None = None,
    replicas: int | None = None,
    *,
    selector_labels: tuple[str, ...] = SELECTOR_LABELS,
    label_prefixes: tuple[str, ...] = (),
    revision_id: str | None = None,
) -> dict[str, Any]:
    """The ``<target>-primary`` workload: the target's spec with its identity label rewritten to ``<value>-primary``.

    ``replicas`` overrides the target's replica count (the target may already be scaled to zero). Of the target's
    own labels and annotations only those matching ``label_prefixes`` are copied, none when it is empty, as
    Flagger's ``-include-label-prefix`` (the pod template keeps all of its labels).
    ``revision_id`` is written to the pod template's ``flagger-id`` annotation, as Flagger does on every promotion,
    so that a release of only a tracked ConfigMap or Secret still rolls the primary's pods.
    """
    key, value = selector_label(target, selector_labels)
    primary_value = primary_name(value)
    meta = clean_metadata(target["metadata"])
    meta["name"] = primary_name(target["metadata"]["name"])
    meta["labels"] = _relabel(included_labels(meta.get("labels"), label_prefixes), key, primary_value)
    annotations = included_labels(meta.get("annotations"), label_prefixes)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    meta["ownerReferences"] = [owner_reference(canary)]
    spec = copy.deepcopy(target["spec"])
    spec["selector"] = {"matchLabels": {key: primary_value}}
    spec["template"] = primary_template(target, config_renames, selector_labels)
    if revision_id:
        spec["template"].setdefault("metadata", {}).setdefault("annotations", {})[REVISION_ID_ANNOTATION] = revision_id
    if target.get("kind", "Deployment") == "Deployment":
        spec["replicas"] = replicas if replicas is not None else max(1, int(target["spec"].get("replicas") or 1))
    return {
        "apiVersion": target.get("apiVersion", "apps/v1"),
        "kind": target.get("kind", "Deployment"),
        "metadata": meta,
        "spec": spec,
    }


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def spec_hash(template: Mapping[str, Any]) -> str:
    """The revision of a pod template: stable across key order, changed by any edit to labels, annotations or spec.

    Flagger stores this in ``status.lastAppliedSpec``; a different value means a new revision to analyse. The
    DaemonSet scale-to-zero nodeSelector is not part of the revision.
    """
    return hashlib.sha256(_canonical(_without_scale_to_zero(template))).hexdigest()[:16]


def config_checksum(obj: Mapping[str, Any]) -> str:
    """The checksum of a ConfigMap's or Secret's content (data and binaryData; metadata does not count).

    A Secret reduced by :func:`secret_digest` carries the checksum it had before its data was dropped.
    """
    digest = obj.get(DIGEST_FIELD)
    if isinstance(digest, str):
        return digest
    payload = {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}
    return hashlib.sha256(_canonical(payload)).hexdigest()[:16]


def secret_digest(obj: dict[str, Any]) -> dict[str, Any]:
    """The Secret as the cache keeps it: its metadata, type and the checksum of its data, never the values.

    Config tracking only needs to notice a change; the values are read when a ``-primary`` copy is written.
    The whole cluster's Secrets would otherwise sit in the controller's memory (and in every heap dump).
    """
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in _DIGEST_METADATA if key in meta}
    reduced: dict[str, Any] = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Secret"),
                               "metadata": kept, DIGEST_FIELD: config_checksum(obj)}
    for key in ("type", "immutable"):
        if key in obj:
            reduced[key] = obj[key]
    return reduced


def is_digest(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is a cached :func:`secret_digest` (its data has to be read from the API)."""
    return DIGEST_FIELD in obj


@dataclass(frozen=True, order=True)
class ConfigRef:
    """A ConfigMap or Secret a pod template depends on; ``key`` is Flagger's trackedConfigs key."""

    kind: str  # "configmap" or "secret"
    name: str
    optional: bool = False

    @property
    def key(self) -> str:
        """``configmap/<name>`` or ``secret/<name>``, as Flagger writes them in ``status.trackedConfigs``."""
        return f"{self.kind}/{self.name}"


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []


def _walk_refs(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Every place a pod spec names a ConfigMap/Secret: (kind, the dict holding the name, the name's key)."""
    for container in _containers(pod_spec):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                yield "configmap", source["configMapKeyRef"], "name"
            if "secretKeyRef" in source:
                yield "secret", source["secretKeyRef"], "name"
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                yield "configmap", env_from["configMapRef"], "name"
            if "secretRef" in env_from:
                yield "secret", env_from["secretRef"], "name"
    for volume in pod_spec.get("volumes") or []:
        if "configMap" in volume:
            yield "configmap", volume["configMap"], "name"
        if "secret" in volume:
            yield "secret", volume["secret"], "secretName"
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield "configmap", source["configMap"], "name"
            if "secret" in source:
                yield "secret", source["secret"], "name"


def config_refs(pod_spec: Mapping[str, Any]) -> list[ConfigRef]:
    """The ConfigMaps and Secrets a pod spec references (env, envFrom, volumes, projected volumes), sorted."""
    found: dict[tuple[str, str], bool] = {}
    for kind, holder, field_name in _walk_refs(pod_spec):
        name = holder.get(field_name)
        if not name:
            continue
        optional = bool(holder.get("optional", False))
        # A config referenced once as required is required, whatever other references say.
        found[(kind, name)] = found.get((kind, name), True) and optional
    return sorted(ConfigRef(kind, name, optional) for (kind, name), optional in found.items())


def is_tracked(obj: Mapping[str, Any]) -> bool:
    """Whether config tracking applies to this ConfigMap/Secret (not opted out by annotation)."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(CONFIG_TRACKING_ANNOTATION, "enabled") != "disabled")


def rename_config_refs(pod_spec: dict[str, Any], renames: Mapping[str, str]) -> None:
    """Point every reference whose ``kind/name`` key is in ``renames`` at the renamed object, in place."""
    for kind, holder, field_name in _walk_refs(pod_spec):
        new_name = renames.get(f"{kind}/{holder.get(field_name)}")
        if new_name:
            holder[field_name] = new_name


def build_config_copy(config: Mapping[str, Any], canary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``-primary`` copy of a tracked ConfigMap or Secret, owned by the Canary."""
    meta = clean_metadata(config["metadata"])
    meta["name"] = primary_name(config["metadata"]["name"])
    meta["ownerReferences"] = [owner_reference(canary)]
    out: dict[str, Any] = {"apiVersion": "v1", "kind": config.get("kind", "ConfigMap"), "metadata": meta}
    for field_name in ("data", "binaryData", "type", "immutable"):
        if field_name in config:
            out[field_name] = copy.deepcopy(config[field_name])
    return out


def primary_scaler(
    scaler: Mapping[str, Any],
    canary: Mapping[str, Any],
    target_name: str,
    replicas: tuple[int | None, int | None],
    bounds: tuple[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metadata and spec of the ``<autoscaler>-primary`` copy of ``scaler`` (HPA or ScaledObject): owned by the
    Canary, scaling ``<target>-primary``; ``replicas`` overrides the spec fields named by ``bounds`` (min, max)."""
    meta = clean_metadata(scaler["metadata"])
    meta["name"] = primary_name(scaler["metadata"]["name"])
    meta["ownerReferences"] = [owner_reference(canary)]
    spec = copy.deepcopy(dict(scaler.get("spec") or {}))
    spec["scaleTargetRef"] = {**(spec.get("scaleTargetRef") or {}), "name": primary_name(target_name)}
    for field_name, value in zip(bounds, replicas, strict=True):
        if value is not None:
            spec[field_name] = value
    return meta, spec


def build_primary_hpa(
    hpa: Mapping[str, Any],
    canary: Mapping[str, Any],
    target_name: str,
    replicas: tuple[int | None, int | None] = (None, None),
) -> dict[str, Any]:
    """The ``<hpa>-primary`` autoscaler scaling the primary; ``replicas`` overrides (minReplicas, maxReplicas)."""
    meta, spec = primary_scaler(hpa, canary, target_name, replicas, ("minReplicas", "maxReplicas"))
    return {"apiVersion": hpa.get("apiVersion", "autoscaling/v2"), "kind": "HorizontalPodAutoscaler",
            "metadata": meta, "spec": spec}


@dataclass(frozen=True)
class Readiness:
    """Whether a workload is ready; ``deadline_exceeded`` means it will not become ready by itself."""

    ready: bool
    message: str = ""
    deadline_exceeded: bool = False


def _condition(status: Mapping[str, Any], cond_type: str) -> Mapping[str, Any] | None:
    cond: Mapping[str, Any]
    for cond in status.get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def readiness(workload: Mapping[str, Any], threshold_percent: int = 100) -> Readiness:
    """Judge a Deployment/DaemonSet from its status the way Flagger does.

    ``threshold_percent`` is ``primaryReadyThreshold``/``canaryReadyThreshold``: the share of updated replicas that
    must be available.
    """
    kind = workload.get("kind", "Deployment")
    meta = workload.get("metadata", {})
    label = f"{meta.get('name')}.{meta.get('namespace')}"
    status = workload.get("status") or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return Readiness(False, f"waiting for rollout to finish: observed {kind} {label} generation "
                                "less than desired generation")
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled", 0))
        updated = int(status.get("updatedNumberScheduled", 0))
        available = int(status.get("numberAvailable", 0))
        total = desired
    else:
        progressing = _condition(status, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return Readiness(False, f"{kind} {label} exceeded its progress deadline", deadline_exceeded=True)
        desired = int(workload.get("spec", {}).get("replicas", 1) if workload.get("spec") else 1)
        updated = int(status.get("updatedReplicas", 0))
        available = int(status.get("availableReplicas", 0))
        total = int(status.get("replicas", 0))
    if desired == 0:
        # Nothing runs: never "ready" to take traffic, however consistent the status looks.
        return Readiness(False, f"{kind} {label} is scaled to zero")
    if updated < desired:
        return Readiness(False, f"waiting for rollout to finish: {updated} out of {desired} new replicas "
                                f"have been updated")
    if total > updated:
        return Readiness(False, f"waiting for rollout to finish: {total - updated} old replicas are pending "
                                "termination")
    needed = -(-updated * threshold_percent // 100)
    if available < needed:
        return Readiness(False, f"waiting for rollout to finish: {available} of {updated} (readyThreshold "
                                f"{threshold_percent}%) updated replicas are available")
    return Readiness(True)


def replicas_of(workload: Mapping[str, Any]) -> int:
    """The desired replica count of a Deployment; for a DaemonSet 0 when scaled to zero, else 1 ("running")."""
    if workload.get("kind") == "DaemonSet":
        return 0 if is_scaled_to_zero(workload) else 1
    spec = workload.get("spec") or {}
    return int(spec.get("replicas", 1) if "replicas" in spec else 1)
