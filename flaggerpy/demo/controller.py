"""The demo's controller: the real one (informers, engine, analysis, Events), in this process, talking HTTP.

It is built by the same :func:`~flaggerpy.canary.wiring.wired_controller` as ``flaggerpy run`` (minus leader
election) through the sandbox's kubeconfig, so the demo exercises exactly the code a cluster would, and it serves the
same telemetry (``/metrics`` with Flagger's metric names, ``/healthz``, ``/readyz``) so a user can scrape it while
the release runs. The only addition is :class:`ObservedAnalyzer`, hooked around the real analyzer, which passes each
step's metric results on to the display after the real checks have judged them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from flaggerpy import telemetry
from flaggerpy.analysis.base import Analyzer, HookType, MetricResult, StepContext, WebhookResult
from flaggerpy.analysis.checks import MetricSettings
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.canary.wiring import WiringSettings, wired_controller
from flaggerpy.demo.errors import DemoError

MetricsObserver = Callable[[Canary, StepContext, list[MetricResult]], None]

# While waiting for readiness or a route, re-check this often in case a watch event is missed (default 1 s).
POLL_INTERVAL = 0.25
# The demo runs on the user's machine: its telemetry is for them, not for the network.
TELEMETRY_HOST = "127.0.0.1"


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


@dataclass(frozen=True)
class RunningController:
    """The started controller and the base URL of its telemetry server (``/metrics``, ``/healthz``, ``/readyz``)."""

    controller: Controller
    telemetry_url: str


async def _serve_telemetry(recorder: telemetry.Recorder, synced: asyncio.Event, port: int) -> web.AppRunner:
    health = telemetry.HealthChecks(ready=synced.is_set, role=lambda: "leader")
    try:
        return await telemetry.serve(recorder, health, TELEMETRY_HOST, port)
    except OSError as exc:
        raise DemoError(f"--metrics-port {port}: cannot listen on {TELEMETRY_HOST}:{port}: "
                        f"{exc.strerror or exc}") from exc


def _bound_url(server: web.AppRunner) -> str:
    # With port 0 the system picks the port; the runner knows which one it got.
    host, port = server.addresses[0][:2]
    return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running_controller(
    kubeconfig: Path, metrics_server: str, observer: MetricsObserver, telemetry_port: int = 0
) -> AsyncIterator[RunningController]:
    """Run the controller against ``kubeconfig`` until the block ends; it stops after finishing its step.

    Its telemetry is served on ``127.0.0.1:telemetry_port`` (0: a free port) for as long as the block runs.
    DemoError when that port cannot be bound.
    """
    settings = WiringSettings(
        kubeconfig=str(kubeconfig),
        controller=ControllerSettings(threadiness=2, engine=EngineSettings(poll_interval=POLL_INTERVAL)),
        metrics=MetricSettings(metrics_server=metrics_server),
    )
    recorder = telemetry.Recorder()
    recorder.set_info(settings.controller.engine.mesh_provider)
    synced = asyncio.Event()
    async with wired_controller(settings, on_request=recorder.observe_api_request, observer=recorder,
                                analyzer_hook=lambda inner: ObservedAnalyzer(inner, observer)) as wired:
        server = await _serve_telemetry(recorder, synced, telemetry_port)
        try:
            await wired.controller.start()
            synced.set()
            yield RunningController(wired.controller, _bound_url(server))
        finally:
            await server.cleanup()
