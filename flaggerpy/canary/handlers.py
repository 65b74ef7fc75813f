"""Watch events → canary keys: which canaries an event about any watched object should wake.

Handlers only enqueue; the reconcile decides. They skip what cannot change a decision: the echo of this process's
own write, a Canary's own status writes, a rollout's progress reports that cannot let a canary move yet, and a
route's status while its canary is not waiting for the Gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flaggerpy.canary import status as st
from flaggerpy.canary import workload as wl
from flaggerpy.canary.memo import Memos
from flaggerpy.canary.reconciler import ROUTE_NOT_ACCEPTED
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import Resource
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.ownwrites import OwnWrites
from flaggerpy.kube.watch import object_key

TARGET_INDEX = "target"
AUTOSCALER_INDEX = "autoscaler"
CONFIG_INDEX = "config"


def target_index(obj: Mapping[str, Any]) -> list[str]:
    """Index canaries by the workload they release: ``namespace/Kind/name``."""
    spec = obj.get("spec") or {}
    ref = spec.get("targetRef") or {}
    if not ref.get("name"):
        return []
    return [f"{(obj.get('metadata') or {}).get('namespace', '')}/{ref.get('kind') or 'Deployment'}/{ref['name']}"]


def autoscaler_index(obj: Mapping[str, Any]) -> list[str]:
    """Index canaries by the autoscaler they reference: ``namespace/Kind/name``."""
    ref = (obj.get("spec") or {}).get("autoscalerRef") or {}
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return []
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    return [f"{namespace}/{ref.get('kind') or 'HorizontalPodAutoscaler'}/{ref['name']}"]


def config_index(obj: Mapping[str, Any]) -> list[str]:
    """Index workloads by the ConfigMaps/Secrets their pod template references: ``namespace/kind/name``."""
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [f"{namespace}/{ref.key}" for ref in wl.config_refs(pod_spec)]


def canary_owner(obj: Mapping[str, Any]) -> str | None:
    """The key of the Canary controlling ``obj`` (primary workloads, Services, routes, config copies)."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Canary" and ref.get("controller"):
            return f"{meta.get('namespace', '')}/{ref.get('name', '')}"
    return None


def spec_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A Canary update worth a reconcile: its spec, annotations (manual actions), deletion or finalizers changed —
    not our own status writes, which would only wake the canary before its interval is due."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") != new.get("spec") or any(
        old_meta.get(key) != new_meta.get(key)
        for key in ("generation", "deletionTimestamp", "finalizers", "annotations", "labels")
    )


def only_status_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether an update changed nothing but the status (and the bookkeeping that comes with any write)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") == new.get("spec") and all(
        old_meta.get(key) == new_meta.get(key)
        for key in ("generation", "deletionTimestamp", "finalizers", "annotations", "labels", "ownerReferences")
    )


def route_resources(route: Mapping[str, Any]) -> tuple[Resource, ...]:
    """The resources a route is written through: an HTTPRoute is one object whichever version a router used."""
    if route.get("kind") == "GRPCRoute":
        return (res.GRPCROUTES_V1,)
    return res.HTTPROUTES_V1, res.HTTPROUTES_V1BETA1


class EventHandlers:
    """The informers' handlers: each turns an event into the keys of the canaries it concerns."""

    def __init__(self, informers: Mapping[Resource, Informer], own_writes: OwnWrites, memos: Memos,
                 enqueue: Callable[[str], None]) -> None:
        self._informers = informers
        self._own_writes = own_writes
        self._memos = memos
        self._enqueue = enqueue

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._enqueue(key)

    def wire_grpc_routes(self, informer: Informer) -> None:
        informer.add_handlers(self._on_owned, self._on_owned, self._on_route_delete)

    def wire_scaled_objects(self, informer: Informer) -> None:
        self._wire_autoscaler(informer, res.SCALEDOBJECTS)

    def scaled_objects_watched(self, informer: Informer) -> None:
        """ScaledObjects are watched from now on (KEDA installed after start): wake the canaries that use one."""
        wake = self._on_autoscaler(res.SCALEDOBJECTS)
        for scaled_object in informer.store.objects():
            wake(scaled_object)

    def wire_routes(self, informer: Informer) -> None:
        informer.add_handlers(self._on_owned, self._on_route_update, self._on_route_delete)

    def _canaries_targeting(self, obj: Mapping[str, Any], kind: str) -> list[str]:
        meta = obj.get("metadata") or {}
        value = f"{meta.get('namespace', '')}/{kind}/{meta.get('name', '')}"
        return [object_key(c) for c in self._informers[res.CANARIES].store.by_index(TARGET_INDEX, value)]

    def _on_workload(self, kind: str) -> Any:
        def handler(*objs: Mapping[str, Any]) -> None:
            obj = objs[-1]
            owner = canary_owner(obj)
            if owner is not None:
                self._enqueue(owner)
            self._enqueue_all(self._canaries_targeting(obj, kind))

        return handler

    def _on_workload_update(self, resource: Resource, kind: str) -> Any:
        """Wake the canaries of an updated workload, except for our own write's echo and for a rollout's progress
        reports that cannot let the canary move yet (still not ready at its threshold, no deadline passed): a
        canary waiting on readiness polls anyway, and each needless wake-up would rewrite its Halted message."""
        own = self._own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if own.is_echo(resource, new):
                return
            progress_only = only_status_changed(old, new)
            owner = canary_owner(new)
            if owner is not None and (not progress_only or self._may_move(owner, new, primary=True)):
                self._enqueue(owner)
            for key in self._canaries_targeting(new, kind):
                if not progress_only or self._may_move(key, new, primary=False):
                    self._enqueue(key)

        return on_update

    def _may_move(self, key: str, workload: Mapping[str, Any], *, primary: bool) -> bool:
        plan = self._memos.plan(key)
        if plan is None:
            return True
        threshold = plan.primary_ready_threshold if primary else plan.canary_ready_threshold
        ready = wl.readiness(workload, threshold)
        return ready.ready or ready.deadline_exceeded

    def _on_owned(self, *objs: Mapping[str, Any]) -> None:
        owner = canary_owner(objs[-1])
        if owner is not None:
            self._enqueue(owner)

    def _unless_echo(self, resource: Resource, handler: Any) -> Any:
        """``handler`` for updates, skipping the echo of this process's own write (see kube/ownwrites.py)."""
        own = self._own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if not own.is_echo(resource, new):
                handler(old, new)

        return on_update

    def _forgetting(self, resource: Resource, handler: Any) -> Any:
        own = self._own_writes

        def on_delete(obj: Mapping[str, Any]) -> None:
            own.forget(resource, obj)
            handler(obj)

        return on_delete

    def _on_autoscaler(self, resource: Resource) -> Any:
        """An autoscaler appeared or went: wake the canary owning it (its ``-primary`` copy) and the canaries that
        reference it (one may be waiting for it)."""
        def handler(obj: Mapping[str, Any]) -> None:
            self._on_owned(obj)
            meta = obj.get("metadata") or {}
            value = f"{meta.get('namespace', '')}/{resource.kind}/{meta.get('name', '')}"
            referencing = self._informers[res.CANARIES].store.by_index(AUTOSCALER_INDEX, value)
            self._enqueue_all(object_key(c) for c in referencing)

        return handler

    def _on_autoscaler_update(self, resource: Resource) -> Any:
        """Like :meth:`_on_autoscaler`, except for our own write's echo and for the autoscaler's status reports (the
        HPA controller and KEDA write them often; nothing the engine decides reads them)."""
        wake = self._on_autoscaler(resource)
        own = self._own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if not own.is_echo(resource, new) and not only_status_changed(old, new):
                wake(new)

        return on_update

    def _wire_autoscaler(self, informer: Informer, resource: Resource) -> None:
        handler = self._on_autoscaler(resource)
        informer.add_handlers(handler, self._on_autoscaler_update(resource), self._forgetting(resource, handler))

    def _on_route_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """A route changed: wake its canary unless the change is our own write coming back, or only the Gateway's
        status while the canary is not waiting for it (acceptance matters only to a canary halted on it)."""
        owner = canary_owner(new)
        if owner is None:
            return
        if any(self._own_writes.is_echo(resource, new) for resource in route_resources(new)):
            return
        if only_status_changed(old, new) and not self._awaits_acceptance(owner):
            return
        self._enqueue(owner)

    def _on_route_delete(self, obj: Mapping[str, Any]) -> None:
        for resource in route_resources(obj):
            self._own_writes.forget(resource, obj)
        self._on_owned(obj)

    def _awaits_acceptance(self, key: str) -> bool:
        namespace, _, name = key.partition("/")
        obj = self._informers[res.CANARIES].store.get_by_name(namespace, name)
        halted = st.condition((obj or {}).get("status") or {}, st.HALTED)
        return halted is not None and halted.get("reason") == ROUTE_NOT_ACCEPTED

    def _on_config(self, kind: str) -> Any:
        def handler(*objs: Mapping[str, Any]) -> None:
            obj = objs[-1]
            owner = canary_owner(obj)
            if owner is not None:  # a -primary copy: its canary repairs it
                self._enqueue(owner)
                return
            # A new revision for every canary whose target references this config.
            meta = obj.get("metadata") or {}
            value = f"{meta.get('namespace', '')}/{kind}/{meta.get('name', '')}"
            for resource, workload_kind in ((res.DEPLOYMENTS, "Deployment"), (res.DAEMONSETS, "DaemonSet")):
                for workload in self._informers[resource].store.by_index(CONFIG_INDEX, value):
                    self._enqueue_all(self._canaries_targeting(workload, workload_kind))

        return handler

    def _on_canary_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if spec_changed(old, new):
            self._enqueue(object_key(new))

    def wire(self) -> None:
        """Add the handlers to every informer watched from the start."""
        def enqueue_obj(obj: Mapping[str, Any]) -> None:
            self._enqueue(object_key(obj))

        self._informers[res.CANARIES].add_handlers(enqueue_obj, self._on_canary_update, enqueue_obj)
        for resource, kind in ((res.DEPLOYMENTS, "Deployment"), (res.DAEMONSETS, "DaemonSet")):
            handler = self._on_workload(kind)
            self._informers[resource].add_handlers(handler, self._on_workload_update(resource, kind),
                                                  self._forgetting(resource, handler))
        self._informers[res.SERVICES].add_handlers(self._on_owned, self._unless_echo(res.SERVICES, self._on_owned),
                                                  self._forgetting(res.SERVICES, self._on_owned))
        self._wire_autoscaler(self._informers[res.HPAS], res.HPAS)
        self.wire_routes(self._informers[res.HTTPROUTES_V1])
        for resource, kind in ((res.CONFIGMAPS, "configmap"), (res.SECRETS, "secret")):
            if resource in self._informers:
                handler = self._on_config(kind)
                self._informers[resource].add_handlers(handler, handler, handler)
