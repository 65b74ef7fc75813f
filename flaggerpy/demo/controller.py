"""The demo's controller: the real one (informers, engine, analysis, Events), in this process, talking HTTP.

It is built by the same :func:`~flaggerpy.canary.wiring.wired_controller` as ``flaggerpy run`` (minus telemetry and
leader election) through the sandbox's kubeconfig, so the demo exercises exactly the code a cluster would. The only
addition is :class:`ObservedAnalyzer`, hooked around the real analyzer, which passes each step's metric results on to
the display after the real checks have judged them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from flaggerpy.analysis.base import Analyzer, HookType, MetricResult, StepContext, WebhookResult
from flaggerpy.analysis.checks import MetricSettings
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.canary.wiring import WiringSettings, wired_controller

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
    settings = WiringSettings(
        kubeconfig=str(kubeconfig),
        controller=ControllerSettings(threadiness=2, engine=EngineSettings(poll_interval=POLL_INTERVAL)),
        metrics=MetricSettings(metrics_server=metrics_server),
    )
    async with wired_controller(settings, analyzer_hook=lambda inner: ObservedAnalyzer(inner, observer)) as wired:
        await wired.controller.start()
        yield wired.controller
