"""The controller: informers → work queue → CanaryReconciler workers, assembled from three collaborators.

- ``canary/informers.py`` (InformerRegistry): the informers, their caches and the optional kinds;
- ``canary/handlers.py`` (EventHandlers): watch events → canary keys. Events only enqueue: a Canary's own change,
  its target's (a new revision is seen at once), and the primary, Services and route it owns (drift is repaired
  within a second);
- ``canary/telemetry.py`` (Telemetry): what Flagger's metrics report and the controller's health, for an optional
  ControllerObserver; the reconciler knows nothing of it.

Workers call :meth:`CanaryReconciler.reconcile`, and one function turns its Result into forget, rate-limited
requeue or requeue after. Workers start only when :meth:`start_workers` is called, so a LeaderElector can gate them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.analysis.base import Analyzer, Notifier
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary import workload as wl
from flaggerpy.canary.handlers import (
    AUTOSCALER_INDEX,
    CONFIG_INDEX,
    TARGET_INDEX,
    EventHandlers,
    autoscaler_index,
    config_index,
    target_index,
)
from flaggerpy.canary.informers import InformerRegistry, OptionalKind
from flaggerpy.canary.memo import Memos
from flaggerpy.canary.offload import Offload
from flaggerpy.canary.reconciler import (
    CanaryReconciler,
    EngineSettings,
    EventSink,
    StatusObserver,
)
from flaggerpy.canary.stepio import StepIO
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
        self.own_writes = OwnWrites()
        """Every write of this process (workloads, Services, configs, routes, statuses): their echoes wake nobody."""
        watched = informers if informers is not None else build_informers(kube, self.settings)
        self._handlers = EventHandlers(watched, self.own_writes, memos, self.enqueue)
        self._registry = InformerRegistry(
            kube, self.settings, watched,
            optional=(
                OptionalKind(res.GRPCROUTES_V1, GRPCROUTE_CRD, self._handlers.wire_grpc_routes),
                OptionalKind(res.SCALEDOBJECTS, SCALEDOBJECT_CRD, self._handlers.wire_scaled_objects, recheck=True,
                             on_watched=self._handlers.scaled_objects_watched),
            ),
            # Most clusters have no v1beta1 HTTPRoutes, and a second informer on every HTTPRoute would double the
            # watch work: it starts when a canary first asks for that version.
            lazy={res.HTTPROUTES_V1BETA1: self._handlers.wire_routes},
            observe=self._telemetry.watch,
        )
        self.informers = self._registry.informers
        self.caches = self._registry.caches
        self._routers = Routers(kube, get_live=self._registry.cached(res.HTTPROUTES_V1),
                                get_live_grpc=self._registry.cached(res.GRPCROUTES_V1),
                                get_live_v1beta1=self._registry.cached(res.HTTPROUTES_V1BETA1),
                                own_writes=self.own_writes)
        self.queue: WorkQueue[str] = WorkQueue(self.settings.queue, name="canaries", on_depth=self._telemetry.on_depth)
        self.reconciler = CanaryReconciler(StepIO(
            kube, self.caches, self._router_for, analyzer, notifier, events, engine,
            on_status=self._telemetry.status_hook, own_writes=self.own_writes, memos=memos, wake=self.enqueue,
            offload=offload,
        ))
        self._workers: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._handlers.wire()
        self._telemetry.wire(self.informers)

    def _router_for(self, canary: Canary) -> Router:
        return self._routers.for_provider(canary.spec.provider or self.settings.engine.mesh_provider)

    # -- event handlers: they only enqueue -----------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        """Ask for a reconcile of the canary ``namespace/name`` as soon as a worker is free."""
        self.queue.add(key)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.enqueue(key)

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
        await self.reconciler.io.offload.close()
        await self._registry.stop()

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
