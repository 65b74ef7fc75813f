"""The controller: informers → work queue → CanaryReconciler workers.

Watch events only enqueue canary keys: a Canary's own change, a change of its target Deployment/DaemonSet (so a new
revision is seen at once, not at the next interval), and changes of the primary, Services and HTTPRoute it owns (so
drift is repaired within a second). Workers call :meth:`CanaryReconciler.reconcile` and schedule the next visit with
``add_after``. Workers start only when :meth:`start_workers` is called, so a LeaderElector can gate them.

An optional :class:`ControllerObserver` (the telemetry Recorder) hears what Flagger's metrics report — canaries per
namespace, each persisted status, analysis step durations, promotions and rollbacks — and the controller's health:
work queue depth, reconcile latency and result, and watch reconnects. The reconciler itself knows nothing of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.analysis.base import Analyzer, Notifier
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary import status as st
from flaggerpy.canary import workload as wl
from flaggerpy.canary.informers import InformerRegistry, OptionalKind
from flaggerpy.canary.memo import Memos
from flaggerpy.canary.offload import Offload
from flaggerpy.canary.reconciler import (
    ROUTE_NOT_ACCEPTED,
    CanaryReconciler,
    EngineSettings,
    EventSink,
    StatusObserver,
)
from flaggerpy.canary.telemetry import ControllerObserver, Telemetry
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.ownwrites import OwnWrites
from flaggerpy.kube.reconcile import Result
from flaggerpy.kube.settings import WatchSettings, WorkQueueSettings
from flaggerpy.kube.watch import object_key
from flaggerpy.kube.workqueue import WorkQueue
from flaggerpy.log import get_logger
from flaggerpy.routing.base import Router
from flaggerpy.routing.factory import Routers

log = get_logger(__name__)

GRPCROUTE_CRD = "grpcroutes.gateway.networking.k8s.io"
SCALEDOBJECT_CRD = "scaledobjects.keda.sh"
TARGET_INDEX = "target"
AUTOSCALER_INDEX = "autoscaler"
CONFIG_INDEX = "config"
# Phases in which a reconcile is a step of an analysis: Flagger observes flagger_canary_duration_seconds for those.


@dataclass(frozen=True)
class ControllerSettings:
    """Process-wide knobs of the controller (flags of ``flaggerpy run``)."""

    namespace: str | None = None
    """Watch one namespace only (None: all namespaces)."""
    threadiness: int = 2
    """Worker coroutines reconciling canaries in parallel (never two on one canary)."""
    sync_timeout: float = 30.0
    """Seconds to wait for the informer caches before starting workers anyway (a missing CRD never syncs)."""
    engine: EngineSettings = field(default_factory=EngineSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    queue: WorkQueueSettings = field(default_factory=WorkQueueSettings)
    control_loop_interval: float | None = None
    """Seconds between looks at every cached canary besides their watch events (Flagger's ``-control-loop-interval``,
    the period of its scheduler's sync); a missed event then costs at most this long. None: events only."""
    optional_kind_recheck: float = 30.0
    """Seconds between looks for the CRD of an optional kind (KEDA ScaledObjects) a canary needs but the cluster
    did not serve: installing it then needs no restart."""


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


def _spec_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A Canary update worth a reconcile: its spec, annotations (manual actions), deletion or finalizers changed —
    not our own status writes, which would only wake the canary before its interval is due."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") != new.get("spec") or any(
        old_meta.get(key) != new_meta.get(key)
        for key in ("generation", "deletionTimestamp", "finalizers", "annotations", "labels")
    )


def _only_status_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether an update changed nothing but the status (and the bookkeeping that comes with any write)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") == new.get("spec") and all(
        old_meta.get(key) == new_meta.get(key)
        for key in ("generation", "deletionTimestamp", "finalizers", "annotations", "labels", "ownerReferences")
    )


def _route_resources(route: Mapping[str, Any]) -> tuple[Resource, ...]:
    """The resources a route is written through: an HTTPRoute is one object whichever version a router used."""
    if route.get("kind") == "GRPCRoute":
        return (res.GRPCROUTES_V1,)
    return res.HTTPROUTES_V1, res.HTTPROUTES_V1BETA1


def build_informers(kube: KubeClient, settings: ControllerSettings) -> dict[Resource, Informer]:
    """The informers the engine reads from (ConfigMaps and Secrets only with config tracking)."""
    watched: list[Resource] = [
        res.CANARIES, res.DEPLOYMENTS, res.DAEMONSETS, res.SERVICES, res.HTTPROUTES_V1, res.HPAS,
        res.METRICTEMPLATES, res.ALERTPROVIDERS,
    ]
    if settings.engine.config_tracking:
        watched += [res.CONFIGMAPS, res.SECRETS]
    indexers: dict[Resource, dict[str, Any]] = {
        res.CANARIES: {TARGET_INDEX: target_index, AUTOSCALER_INDEX: autoscaler_index},
        res.DEPLOYMENTS: {CONFIG_INDEX: config_index},
        res.DAEMONSETS: {CONFIG_INDEX: config_index},
    }
    # Secrets are cached as metadata and a digest: tracking needs to see them change, never to hold their values.
    transforms = {res.SECRETS: wl.secret_digest}
    return {
        resource: Informer(kube, resource, settings.namespace, settings=settings.watch,
                           indexers=indexers.get(resource), transform=transforms.get(resource))
        for resource in watched
    }


class Controller:
    """Owns the informers, the work queue and the workers of one flaggerpy process."""

    def __init__(
        self,
        kube: KubeClient,
        analyzer: Analyzer,
        notifier: Notifier,
        events: EventSink,
        settings: ControllerSettings | None = None,
        *,
        informers: dict[Resource, Informer] | None = None,
        on_status: StatusObserver | None = None,
        observer: ControllerObserver | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.settings = settings or ControllerSettings()
        self._kube = kube
        engine = self.settings.engine
        memos = Memos()
        self._telemetry = Telemetry(observer, memos, on_status)
        self._registry = InformerRegistry(
            kube, self.settings, informers if informers is not None else build_informers(kube, self.settings),
            optional=(
                OptionalKind(res.GRPCROUTES_V1, GRPCROUTE_CRD, self._wire_grpc_routes),
                OptionalKind(res.SCALEDOBJECTS, SCALEDOBJECT_CRD, self._wire_scaled_objects, recheck=True,
                             on_watched=self._scaled_objects_watched),
            ),
            # Most clusters have no v1beta1 HTTPRoutes, and a second informer on every HTTPRoute would double the
            # watch work: it starts when a canary first asks for that version.
            lazy={res.HTTPROUTES_V1BETA1: self._wire_routes},
            observe=self._telemetry.watch,
        )
        self.informers = self._registry.informers
        self.caches = self._registry.caches
        self.own_writes = OwnWrites()
        """Every write of this process (workloads, Services, configs, routes, statuses): their echoes wake nobody."""
        self._routers = Routers(kube, get_live=self._registry.cached(res.HTTPROUTES_V1),
                                get_live_grpc=self._registry.cached(res.GRPCROUTES_V1),
                                get_live_v1beta1=self._registry.cached(res.HTTPROUTES_V1BETA1),
                                own_writes=self.own_writes)
        self.queue: WorkQueue[str] = WorkQueue(self.settings.queue, name="canaries", on_depth=self._telemetry.on_depth)
        self.reconciler = CanaryReconciler(
            kube, self.caches, self._router_for, analyzer, notifier, events, engine,
            on_status=self._telemetry.status_hook, own_writes=self.own_writes, memos=memos, wake=self.enqueue,
            offload=offload,
        )
        self._workers: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._wire()

    def _wire_grpc_routes(self, informer: Informer) -> None:
        informer.add_handlers(self._on_owned, self._on_owned, self._on_route_delete)

    def _wire_scaled_objects(self, informer: Informer) -> None:
        self._wire_autoscaler(informer, res.SCALEDOBJECTS)

    def _scaled_objects_watched(self, informer: Informer) -> None:
        """ScaledObjects are watched from now on (KEDA installed after start): wake the canaries that use one."""
        wake = self._on_autoscaler(res.SCALEDOBJECTS)
        for scaled_object in informer.store.objects():
            wake(scaled_object)

    def _wire_routes(self, informer: Informer) -> None:
        informer.add_handlers(self._on_owned, self._on_route_update, self._on_route_delete)

    def _router_for(self, canary: Canary) -> Router:
        return self._routers.for_provider(canary.spec.provider or self.settings.engine.mesh_provider)

    # -- event handlers: they only enqueue -----------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        """Ask for a reconcile of the canary ``namespace/name`` as soon as a worker is free."""
        self.queue.add(key)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.enqueue(key)

    def _canaries_targeting(self, obj: Mapping[str, Any], kind: str) -> list[str]:
        meta = obj.get("metadata") or {}
        value = f"{meta.get('namespace', '')}/{kind}/{meta.get('name', '')}"
        return [object_key(c) for c in self.informers[res.CANARIES].store.by_index(TARGET_INDEX, value)]

    def _on_workload(self, kind: str) -> Any:
        def handler(*objs: Mapping[str, Any]) -> None:
            obj = objs[-1]
            owner = canary_owner(obj)
            if owner is not None:
                self.enqueue(owner)
            self._enqueue_all(self._canaries_targeting(obj, kind))

        return handler

    def _on_workload_update(self, resource: Resource, kind: str) -> Any:
        """Wake the canaries of an updated workload, except for our own write's echo and for a rollout's progress
        reports that cannot let the canary move yet (still not ready at its threshold, no deadline passed): a
        canary waiting on readiness polls anyway, and each needless wake-up would rewrite its Halted message."""
        own = self.own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if own.is_echo(resource, new):
                return
            progress_only = _only_status_changed(old, new)
            owner = canary_owner(new)
            if owner is not None and (not progress_only or self._may_move(owner, new, primary=True)):
                self.enqueue(owner)
            for key in self._canaries_targeting(new, kind):
                if not progress_only or self._may_move(key, new, primary=False):
                    self.enqueue(key)

        return on_update

    def _may_move(self, key: str, workload: Mapping[str, Any], *, primary: bool) -> bool:
        plan = self.reconciler.plan(key)
        if plan is None:
            return True
        threshold = plan.primary_ready_threshold if primary else plan.canary_ready_threshold
        ready = wl.readiness(workload, threshold)
        return ready.ready or ready.deadline_exceeded

    def _on_owned(self, *objs: Mapping[str, Any]) -> None:
        owner = canary_owner(objs[-1])
        if owner is not None:
            self.enqueue(owner)

    def _unless_echo(self, resource: Resource, handler: Any) -> Any:
        """``handler`` for updates, skipping the echo of this process's own write (see kube/ownwrites.py)."""
        own = self.own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if not own.is_echo(resource, new):
                handler(old, new)

        return on_update

    def _forgetting(self, resource: Resource, handler: Any) -> Any:
        own = self.own_writes

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
            referencing = self.informers[res.CANARIES].store.by_index(AUTOSCALER_INDEX, value)
            self._enqueue_all(object_key(c) for c in referencing)

        return handler

    def _on_autoscaler_update(self, resource: Resource) -> Any:
        """Like :meth:`_on_autoscaler`, except for our own write's echo and for the autoscaler's status reports (the
        HPA controller and KEDA write them often; nothing the engine decides reads them)."""
        wake = self._on_autoscaler(resource)
        own = self.own_writes

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            if not own.is_echo(resource, new) and not _only_status_changed(old, new):
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
        if any(self.own_writes.is_echo(resource, new) for resource in _route_resources(new)):
            return
        if _only_status_changed(old, new) and not self._awaits_acceptance(owner):
            return
        self.enqueue(owner)

    def _on_route_delete(self, obj: Mapping[str, Any]) -> None:
        for resource in _route_resources(obj):
            self.own_writes.forget(resource, obj)
        self._on_owned(obj)

    def _awaits_acceptance(self, key: str) -> bool:
        namespace, _, name = key.partition("/")
        obj = self.informers[res.CANARIES].store.get_by_name(namespace, name)
        halted = st.condition((obj or {}).get("status") or {}, st.HALTED)
        return halted is not None and halted.get("reason") == ROUTE_NOT_ACCEPTED

    def _on_config(self, kind: str) -> Any:
        def handler(*objs: Mapping[str, Any]) -> None:
            obj = objs[-1]
            owner = canary_owner(obj)
            if owner is not None:  # a -primary copy: its canary repairs it
                self.enqueue(owner)
                return
            # A new revision for every canary whose target references this config.
            meta = obj.get("metadata") or {}
            value = f"{meta.get('namespace', '')}/{kind}/{meta.get('name', '')}"
            for resource, workload_kind in ((res.DEPLOYMENTS, "Deployment"), (res.DAEMONSETS, "DaemonSet")):
                for workload in self.informers[resource].store.by_index(CONFIG_INDEX, value):
                    self._enqueue_all(self._canaries_targeting(workload, workload_kind))

        return handler

    def _on_canary_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if _spec_changed(old, new):
            self.enqueue(object_key(new))

    def _wire(self) -> None:
        def enqueue_obj(obj: Mapping[str, Any]) -> None:
            self.enqueue(object_key(obj))

        self.informers[res.CANARIES].add_handlers(enqueue_obj, self._on_canary_update, enqueue_obj)
        for resource, kind in ((res.DEPLOYMENTS, "Deployment"), (res.DAEMONSETS, "DaemonSet")):
            handler = self._on_workload(kind)
            self.informers[resource].add_handlers(handler, self._on_workload_update(resource, kind),
                                                  self._forgetting(resource, handler))
        self.informers[res.SERVICES].add_handlers(self._on_owned, self._unless_echo(res.SERVICES, self._on_owned),
                                                  self._forgetting(res.SERVICES, self._on_owned))
        self._wire_autoscaler(self.informers[res.HPAS], res.HPAS)
        self._wire_routes(self.informers[res.HTTPROUTES_V1])
        for resource, kind in ((res.CONFIGMAPS, "configmap"), (res.SECRETS, "secret")):
            if resource in self.informers:
                handler = self._on_config(kind)
                self.informers[resource].add_handlers(handler, handler, handler)
        self._telemetry.wire(self.informers)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start_informers(self, standby: bool = False) -> None:
        """Start every informer and wait (bounded) until their caches are filled.

        ``standby``: keep the caches warm for a takeover but call no handler until :meth:`resume_handlers` — a
        replica without the lease would only fill a work queue that no worker drains.
        """
        await self._registry.start(standby)

    async def _process(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        cached = self.informers[res.CANARIES].store.get_by_name(namespace, name)
        return await self._telemetry.timed(lambda: self.reconciler.reconcile(key), cached)

    async def resume_handlers(self) -> None:
        """Handle events again after a standby start: every cached object is replayed as added (so each canary is
        looked at once by the new leader), then events flow as usual."""
        await self._registry.resume_handlers()

    def liveness(self) -> list[str]:
        """What is dead and would not come back by itself (empty when alive): an informer that ended or keeps
        crashing, or a worker pool that stopped while the queue was still open. ``/healthz`` fails on any."""
        dead = self._registry.dead()
        if self._workers is not None and self._workers.done() and not self.queue.shutting_down:
            dead.append("the canary workers stopped")
        return dead

    def start_workers(self) -> None:
        """Start the worker pool (idempotent); the leader-election hook calls this when leading starts."""
        if self._workers is None or self._workers.done():
            self._workers = asyncio.get_running_loop().create_task(
                self.queue.run_workers(self.settings.threadiness, self._process), name="canary-workers"
            )
        interval = self.settings.control_loop_interval
        if interval and (self._resync is None or self._resync.done()):
            self._resync = asyncio.get_running_loop().create_task(self._resync_loop(interval), name="canary-resync")

    async def _resync_loop(self, interval: float) -> None:
        """Every ``interval``, queue each cached canary (the queue de-duplicates keys already waiting)."""
        while True:
            await asyncio.sleep(interval)
            self._enqueue_all(object_key(c) for c in self.informers[res.CANARIES].store.objects())

    async def start(self) -> None:
        """Fill the caches, then start the workers (no leader election)."""
        await self.start_informers()
        self.start_workers()

    async def stop(self) -> None:
        """Graceful stop: let in-flight steps finish and persist, then stop watching."""
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        await self.queue.shutdown(drain=True)
        if self._workers is not None:
            await asyncio.gather(self._workers, return_exceptions=True)
        # Outbound work still in the canaries' lanes (hooks a step waits for, alerts, Event hooks) is dropped.
        await self.reconciler.offload.close()
        await self._registry.stop()

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
