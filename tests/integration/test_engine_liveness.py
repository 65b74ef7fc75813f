"""/healthz reflects dead parts of a running controller: an informer that ended, a worker pool that stopped."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from flaggerpy import telemetry
from flaggerpy.canary.controller import Controller
from flaggerpy.kube import resources as res
from tests.integration.conftest import ControllerFactory


async def healthz(controller: Controller) -> tuple[int, str]:
    """What /healthz answers when the runner's liveness check is the controller's (as ``flaggerpy run`` wires it)."""
    app = telemetry.build_app(telemetry.Recorder(), telemetry.HealthChecks(alive=lambda: not controller.liveness()))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        return response.status, await response.text()


async def test_healthz_fails_when_an_informer_or_the_workers_are_dead(run_controller: ControllerFactory) -> None:
    async with run_controller() as ctl:
        assert ctl.liveness() == []
        assert await healthz(ctl) == (200, "ok")
        # An informer's task ends for good (as if its supervisor itself had been killed).
        task = ctl.informers[res.SERVICES].start()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert ctl.liveness() == ["informer services is not running"]
        assert await healthz(ctl) == (503, "unhealthy")
        ctl.informers[res.SERVICES].start()
        assert ctl.liveness() == []
        # The worker pool ends while the queue is still open.
        workers = ctl._workers
        assert workers is not None
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
        assert ctl.liveness() == ["the canary workers stopped"]
        assert (await healthz(ctl))[0] == 503
