"""One place that assembles a working controller from settings: ``flaggerpy run`` and the demo both use it.

A KubeClient, informers bound to it, the cache-backed lookup, the real analysis (metric checks and webhooks), the
alert notifier, the Event sink and the controller. The block owns them all: on exit the controller finishes the
steps in flight and every HTTP session is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from flaggerpy.alerts.client import DeliverySettings
from flaggerpy.alerts.notifier import AlertNotifier, DefaultAlerts
from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.base import Analyzer
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.analysis.webhooks import WebhookRunner, WebhookSettings
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.controller import Controller, ControllerSettings, build_informers
from flaggerpy.canary.events import EngineEvents
from flaggerpy.canary.lookup import CacheLookup
from flaggerpy.canary.offload import Offload
from flaggerpy.canary.reconciler import StatusObserver
from flaggerpy.canary.telemetry import ControllerObserver
from flaggerpy.kube.api import KubeClient, RequestObserver, runs_in_cluster
from flaggerpy.kube.events import EventRecorder
from flaggerpy.kube.settings import ClientSettings, EventSettings
from flaggerpy.outbound import OutboundPolicy

AnalyzerHook = Callable[[Analyzer], Analyzer]
"""Wraps the real analyzer, e.g. to show each step's results; it must delegate the decisions unchanged."""


@dataclass(frozen=True)
class WiringSettings:
    """What the controller is connected to and how it behaves."""

    kubeconfig: str | None = None
    """Path of a kubeconfig; None: in-cluster, then $KUBECONFIG, then ~/.kube/config."""
    context: str | None = None
    client: ClientSettings = field(default_factory=ClientSettings)
    """Timeouts, retries and the client-side rate limit (``-kubeconfig-qps``/``-kubeconfig-burst``)."""
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    alerts: DefaultAlerts = field(default_factory=DefaultAlerts)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    """Alert delivery limits (attempt time, retries, backoff)."""
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    """Webhook call limits (default timeout, backoff between retries)."""
    events: EventSettings = field(default_factory=EventSettings)
    """The Event recorder's aggregation cache and message limit."""
    no_cross_namespace_refs: bool = False
    """Refuse MetricTemplates and AlertProviders outside the Canary's namespace (``-no-cross-namespace-refs``)."""
    cluster_name: str = ""
    """Added to every alert (Flagger's ``-cluster-name``)."""
    event_webhook: str = ""
    """URL receiving every canary Event (Flagger's ``-event-webhook``); empty: none."""
    outbound_allow: tuple[str, ...] = ()
    """CIDRs and host names tenants' addresses may reach despite the outbound rules (``--outbound-allow``)."""
    ambient_credentials: bool = False
    """Providers without a Secret may use the controller's cloud identity (``--enable-ambient-credentials``)."""


@dataclass(frozen=True)
class Wired:
    """The parts a caller drives: the client (e.g. for leader election) and the controller to start."""

    kube: KubeClient
    controller: Controller


@contextlib.asynccontextmanager
async def wired_controller(
    settings: WiringSettings,
    *,
    on_request: RequestObserver | None = None,
    on_status: StatusObserver | None = None,
    observer: ControllerObserver | None = None,
    analyzer_hook: AnalyzerHook | None = None,
) -> AsyncIterator[Wired]:
    """A controller assembled from ``settings``, not yet started; stopped and closed when the block ends."""
    policy = await OutboundPolicy.for_process(
        in_cluster=runs_in_cluster(settings.kubeconfig),
        allow=settings.outbound_allow,
        ambient_credentials=settings.ambient_credentials,
    )
    async with KubeClient(settings.kubeconfig, settings.context, settings=settings.client,
                          on_request=on_request) as kube:
        informers = build_informers(kube, settings.controller)
        lookup = CacheLookup(Caches({r: i.store for r, i in informers.items()}), kube)
        webhooks = WebhookRunner(event_webhook=settings.event_webhook or None, settings=settings.webhooks,
                                 policy=policy)
        metric_settings = dataclasses.replace(settings.metrics, same_namespace_only=settings.no_cross_namespace_refs)
        metrics = MetricChecker(lookup, metric_settings, policy=policy)
        notifier = AlertNotifier(lookup, cluster_name=settings.cluster_name, defaults=settings.alerts, policy=policy,
                                 same_namespace_only=settings.no_cross_namespace_refs, settings=settings.delivery)
        engine = settings.controller.engine
        # One lane per canary for all its outbound work, Event hooks included, so they keep the engine's order.
        lanes = Offload(deadline=engine.analysis_deadline, inline_wait=engine.analysis_inline_wait)
        events = EngineEvents(EventRecorder(kube, settings=settings.events), webhooks, lanes)
        analyzer: Analyzer = CanaryAnalyzer(metrics, webhooks)
        if analyzer_hook is not None:
            analyzer = analyzer_hook(analyzer)
        controller = Controller(kube, analyzer, notifier, events, settings.controller, informers=informers,
                                on_status=on_status, observer=observer, offload=lanes)
        try:
            yield Wired(kube, controller)
        finally:
            await controller.stop()
            await asyncio.gather(webhooks.close(), metrics.close(), notifier.close())
