"""Writes to the workloads, configs and Services a canary manages — each only when the cache shows a difference.

The apiserver fills defaults into what we write (pod template fields, Service clusterIP, ...), so "did it change" is
judged on what the canary decides: a hash of the desired spec kept in an annotation for workloads and autoscalers, the
managed fields for Services, the data for config copies.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.flagger import AutoscalerReference, Canary
from flaggerpy.canary import autoscalers as scalers
from flaggerpy.canary import service as svc
from flaggerpy.canary import workload as wl
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.memo import CanaryMemo
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.errors import AlreadyExists, NotFound
from flaggerpy.kube.ownwrites import OwnWrites

# Where the engine remembers which desired spec it last wrote to a primary workload or autoscaler.
SPEC_HASH_ANNOTATION = "flaggerpy.io/spec-hash"


class MissingConfig(LookupError):
    """A required ConfigMap/Secret referenced by the target does not exist."""


def workload_resource(kind: str) -> Resource:
    """The resource handle of a target kind (Deployment or DaemonSet)."""
    return res.DAEMONSETS if kind == "DaemonSet" else res.DEPLOYMENTS


def _with_hash(obj: dict[str, Any], digest: str) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = digest
    return obj


def _owner(canary: Canary) -> dict[str, Any]:
    """The Canary as the builders take the owner of what they build (its controller ownerReference)."""
    return {"apiVersion": canary.api_version, "kind": canary.kind or "Canary",
            "metadata": {"name": canary.metadata.name, "uid": canary.metadata.uid or ""}}


def _stored_hash(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)


def _replace_keeping_identity(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """``desired`` with the live object's identity (resourceVersion for concurrency, uid) and foreign metadata."""
    out = copy.deepcopy(dict(desired))
    live_meta = live.get("metadata") or {}
    meta = out["metadata"]
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    for field_name in ("labels", "annotations"):
        merged = {**(live_meta.get(field_name) or {}), **(meta.get(field_name) or {})}
        if merged:
            meta[field_name] = merged
    return out


class Applier:
    """Create/update/scale/delete through the API, deciding from the informer caches."""

    def __init__(self, kube: KubeClient, caches: Caches, own_writes: OwnWrites,
                 selector_labels: tuple[str, ...] = wl.SELECTOR_LABELS,
                 label_prefixes: tuple[str, ...] = ()) -> None:
        self._kube = kube
        self._caches = caches
        self._selector_labels = selector_labels
        self._label_prefixes = label_prefixes
        self._own_writes = own_writes
        """Every write is recorded there, so the controller can ignore the echoes."""

    def _wrote(self, resource: Resource, written: dict[str, Any]) -> dict[str, Any]:
        self._own_writes.remember(resource, written)
        return written

    async def _create_or_replace(self, resource: Resource, desired: dict[str, Any],
                                 live: Mapping[str, Any] | None) -> dict[str, Any]:
        client = self._kube.resource(resource)
        if live is None:
            try:
                return self._wrote(resource, await client.create(desired))
            except AlreadyExists:
                # The cache lags behind a create we (or a previous replica) made; read it once and update.
                meta = desired["metadata"]
                live = await client.get(meta["name"], meta.get("namespace"))
        return self._wrote(resource, await client.replace(_replace_keeping_identity(live, desired)))

    async def ensure_primary(
        self,
        canary: Canary,
        memo: CanaryMemo,
        target: Mapping[str, Any],
        renames: Mapping[str, str],
        autoscaled: bool,
        revision_id: str | None = None,
    ) -> bool:
        """Make ``<target>-primary`` run the target's pod template; True when something was written.

        ``revision_id`` goes into the primary's pod template (see :func:`~flaggerpy.canary.workload.build_primary`).
        """
        namespace = target["metadata"]["namespace"]
        resource = workload_resource(target.get("kind", "Deployment"))
        live = self._caches.get(resource, namespace, wl.primary_name(target["metadata"]["name"]))
        # Building and hashing the desired primary copies the whole target: skip it while nothing it is built from
        # or compared with changed since the primary was last found in order.
        meta = target["metadata"]
        inputs = (meta.get("labels"), meta.get("annotations"), canary.metadata.uid,
                  dict(renames), autoscaled, revision_id,
                  None if live is None else (live["metadata"].get("uid"), live["metadata"].get("resourceVersion")))
        seen = memo.primary_in_order
        if seen is not None and seen[1] == inputs and seen[0] == target["spec"]:
            return False
        replicas = None
        if live is not None and (autoscaled or wl.replicas_of(target) == 0):
            # The autoscaler (or the running primary) owns the replica count once the target is scaled down.
            replicas = wl.replicas_of(live) or None
        desired = wl.build_primary(target, _owner(canary), renames, replicas, selector_labels=self._selector_labels,
                                   label_prefixes=self._label_prefixes, revision_id=revision_id)
        digest = wl.spec_hash(desired["spec"]["template"])
        if live is not None and _stored_hash(live) == digest:
            memo.primary_in_order = (target["spec"], inputs)
            return False
        memo.primary_in_order = None
        await self._create_or_replace(resource, _with_hash(desired, digest), live)
        return True

    async def ensure_configs(self, target: Mapping[str, Any]) -> tuple[
        dict[str, str], dict[str, str]
    ]:
        """The tracked configs of the target: (checksums by ``kind/name``, renames to the ``-primary`` copies).

        Reads only; copies are written by :meth:`copy_configs` when a revision is promoted.
        """
        namespace = target["metadata"]["namespace"]
        checksums: dict[str, str] = {}
        renames: dict[str, str] = {}
        for ref in wl.config_refs(target["spec"]["template"].get("spec") or {}):
            resource = res.CONFIGMAPS if ref.kind == "configmap" else res.SECRETS
            obj = self._caches.get(resource, namespace, ref.name)
            if obj is None:
                if ref.optional:
                    continue
                raise MissingConfig(f"{ref.kind} {namespace}/{ref.name} referenced by "
                                    f"{target.get('kind', 'Deployment')} {target['metadata']['name']} not found")
            if not wl.is_tracked(obj):
                continue
            checksums[ref.key] = wl.config_checksum(obj)
            renames[ref.key] = wl.primary_name(ref.name)
        return checksums, renames

    async def copy_configs(self, canary: Canary, keys: list[str]) -> None:
        """Write the ``-primary`` copies of the tracked configs (only those whose data differs)."""
        namespace = canary.metadata.namespace
        for key in keys:
            kind, _, name = key.partition("/")
            resource = res.CONFIGMAPS if kind == "configmap" else res.SECRETS
            source = self._caches.get(resource, namespace, name)
            if source is not None and wl.is_digest(source):
                # The cache holds the Secret's digest only: its values are read now, for the copy, and not kept.
                try:
                    source = await self._kube.resource(resource).get(name, namespace)
                except NotFound:
                    source = None
            if source is None:
                continue
            desired = wl.build_config_copy(source, _owner(canary))
            live = self._caches.get(resource, namespace, desired["metadata"]["name"])
            if live is not None and wl.config_checksum(live) == wl.config_checksum(desired):
                continue
            await self._create_or_replace(resource, desired, live)

    def _scaler(self, ref: AutoscalerReference, resource: Resource, namespace: str,
                target: Mapping[str, Any]) -> dict[str, Any]:
        """The cached autoscaler ``ref`` names (of ``resource``), checked against the target; :class:`AutoscalerError`
        otherwise."""
        kind = ref.scaler_kind
        live = self._caches.get(resource, namespace, ref.name)
        if live is None:
            if not self._caches.has(resource):
                self._caches.ask_for(resource)
                raise scalers.AutoscalerNotFound(
                    f"spec.autoscalerRef.kind: {kind}: the cluster does not serve {resource.api_version} "
                    f"{resource.plural} (install KEDA: the canary goes on once its CRD is served)"
                )
            raise scalers.AutoscalerNotFound(f"spec.autoscalerRef.name: {kind} {namespace}/{ref.name} not found")
        scalers.check_target(kind, live, target.get("kind") or "Deployment", target["metadata"]["name"])
        if kind == scalers.SCALED_OBJECT:
            scalers.check_queries(ref.primary_scaler_queries, live)
        return live

    async def ensure_scaler(self, canary: Canary, ref: AutoscalerReference,
                            target: Mapping[str, Any], create_only: bool = False) -> None:
        """Keep ``<autoscaler>-primary`` (HPA or ScaledObject) scaling the primary, rewritten only when its desired
        spec changed; :class:`AutoscalerError` (nothing written) when the referenced autoscaler is missing or
        cannot be used for this target.

        ``create_only``: create the copy when it is missing but leave an existing one as it is (its spec follows
        the target's autoscaler at initialisation and promotion, as in Flagger).
        """
        namespace = target["metadata"]["namespace"]
        target_name = target["metadata"]["name"]
        scaled_object = ref.scaler_kind == scalers.SCALED_OBJECT
        resource = res.SCALEDOBJECTS if scaled_object else res.HPAS
        current = self._caches.get(resource, namespace, wl.primary_name(ref.name))
        if create_only and current is not None:
            return
        live = self._scaler(ref, resource, namespace, target)
        limits = ref.primary_scaler_replicas
        replicas = (limits.min_replicas, limits.max_replicas) if limits else (None, None)
        if scaled_object:
            desired = scalers.build_primary_scaled_object(live, _owner(canary), target_name,
                                                          ref.primary_scaler_queries, replicas)
        else:
            desired = wl.build_primary_hpa(live, _owner(canary), target_name, replicas)
        digest = wl.spec_hash(desired["spec"])
        if current is None or _stored_hash(current) != digest:
            await self._create_or_replace(resource, _with_hash(desired, digest), current)

    async def _hold_scaled_objects(self, workload: Mapping[str, Any], replicas: int) -> None:
        """Pause the ScaledObjects scaling ``workload`` at zero replicas when it is scaled to zero, resume them when
        it is scaled up: KEDA would otherwise undo the scale-down (Flagger pauses the canary's ScaledObject the same
        way). Nothing to do where KEDA is not installed."""
        if not self._caches.has(res.SCALEDOBJECTS):
            return
        meta = workload["metadata"]
        kind = workload.get("kind") or "Deployment"
        for scaled_object in self._caches.list(res.SCALEDOBJECTS, meta["namespace"]):
            if not scalers.scales(scaled_object, kind, meta["name"]):
                continue
            patch = scalers.pause_patch(scaled_object, 0 if replicas == 0 else None)
            if patch is None:
                continue
            try:
                self._wrote(res.SCALEDOBJECTS, await self._kube.resource(res.SCALEDOBJECTS).patch(
                    scaled_object["metadata"]["name"], meta["namespace"], patch))
            except NotFound:
                continue  # deleted since the cache saw it: nothing left to pause

    async def ensure_services(self, desired: Mapping[str, dict[str, Any]]) -> list[str]:
        """Create or repair the apex/primary/canary Services; the names of those written."""
        written: list[str] = []
        for obj in desired.values():
            meta = obj["metadata"]
            live = self._caches.get(res.SERVICES, meta["namespace"], meta["name"])
            if live is None:
                await self._create_or_replace(res.SERVICES, obj, None)
            elif svc.needs_update(live, obj):
                self._wrote(res.SERVICES, await self._kube.resource(res.SERVICES).replace(svc.merged(live, obj)))
            else:
                continue
            written.append(meta["name"])
        return written

    async def scale(self, workload: Mapping[str, Any], replicas: int) -> bool:
        """Set a Deployment's replicas (pausing or resuming the KEDA ScaledObjects that scale it), or run/stop a
        DaemonSet (any replicas > 0 means run); False when the workload's replicas were unchanged."""
        meta = workload["metadata"]
        if workload.get("kind") == "DaemonSet":
            running = replicas > 0
            if running == (not wl.is_scaled_to_zero(workload)):
                return False
            # Merge patch: null removes the key, so the user's own nodeSelector entries stay untouched.
            selector = {wl.SCALE_TO_ZERO_KEY: None if running else "true"}
            body = {"spec": {"template": {"spec": {"nodeSelector": selector}}}}
            self._wrote(res.DAEMONSETS, await self._kube.resource(res.DAEMONSETS).patch(meta["name"], meta["namespace"],
                                                                                      body))
            return True
        # Before the scale: a scale-down KEDA still drives would be undone, a scale-up it holds paused would stay 0.
        await self._hold_scaled_objects(workload, replicas)
        if wl.replicas_of(workload) == replicas:
            return False
        self._wrote(res.DEPLOYMENTS, await self._kube.resource(res.DEPLOYMENTS).patch(
            meta["name"], meta["namespace"], {"spec": {"replicas": replicas}}
        ))
        return True

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete an object; absent is fine."""
        try:
            await self._kube.resource(resource).delete(name, namespace)
        except NotFound:
            return

    async def point_apex_at_target(self, apex: Mapping[str, Any], key: str, value: str) -> None:
        """On deletion with revertOnDeletion: the apex Service selects the target again and outlives the Canary."""
        out = copy.deepcopy(dict(apex))
        out["spec"]["selector"] = {key: value}
        out["metadata"]["ownerReferences"] = [
            ref for ref in out["metadata"].get("ownerReferences") or [] if ref.get("kind") != "Canary"
        ]
        await self._kube.resource(res.SERVICES).replace(out)
