"""The demo's controller: the real one (informers, engine, analysis, Events), in this process, talking HTTP.

It is wired like ``flaggerpy run`` (minus telemetry and leader election) through the sandbox's kubeconfig, so the
demo exercises exactly the code a cluster would. The only addition is :class:`ObservedAnalyzer`, which passes each
step's metric results on to the display after the real checks have judged them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from flaggerpy.alerts.notifier import AlertNotifier
from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.base import Analyzer, HookType, MetricResult, StepContext, WebhookResult
from flaggerpy.analysis.checks import MetricChecker, MetricSettings
from flaggerpy.analysis.webhooks import WebhookRunner
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.controller import Controller, ControllerSettings, build_informers
from flaggerpy.canary.events import EngineEvents
from flaggerpy.canary.lookup import CacheLookup
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.events import EventRecorder

MetricsObserver = Callable[[Canary, StepContext, list[MetricResult]], None]

# While waiting for readiness or a route, re-check this often in case a watch event is missed (default 1 s).
POLL_INTERVAL = 0.25


class ObservedAnalyzer:
    """An Analyzer that delegates to the real one and reports every step's metric results to ``observer``."""

    def __init__(self, inner: Analyzer, observer: MetricsObserver) -> None:
        self._inner = inner
        self._observer = observer

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """The real checks' results, also handed to the observer."""
        results = await self._inner.check_metrics(canary, step)
        self._observer(canary, step, results)
        return results

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """The real webhooks' results."""
        return await self._inner.run_webhooks(canary, hook_type, step)


@contextlib.asynccontextmanager
async def running_controller(
    kubeconfig: Path, metrics_server: str, observer: MetricsObserver
) -> AsyncIterator[Controller]:
    """Run the controller against ``kubeconfig`` until the block ends; it stops after finishing its step."""
    settings = ControllerSettings(threadiness=2, engine=EngineSettings(poll_interval=POLL_INTERVAL))
    async with KubeClient(str(kubeconfig)) as kube:
        informers = build_informers(kube, settings)
        lookup = CacheLookup(Caches({r: i.store for r, i in informers.items()}), kube)
        webhooks = WebhookRunner()
        metrics = MetricChecker(lookup, MetricSettings(metrics_server=metrics_server))
        notifier = AlertNotifier(lookup)
        events = EngineEvents(EventRecorder(kube), webhooks)
        analyzer = ObservedAnalyzer(CanaryAnalyzer(metrics, webhooks), observer)
        controller = Controller(kube, analyzer, notifier, events, settings, informers=informers)
        try:
            await controller.start()
            yield controller
        finally:
            await controller.stop()
            await asyncio.gather(webhooks.close(), metrics.close(), notifier.close())
