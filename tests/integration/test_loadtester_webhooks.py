"""The controller's webhook runner against the load tester: the manual gates and load tests a user wires up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from flaggerpy.analysis.base import HookType, StepContext
from flaggerpy.analysis.webhooks import WebhookRunner
from flaggerpy.apis.flagger import Canary
from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.loadtester.server import RUNNER, create_app

STEP = StepContext(phase="Progressing", checksum="c1")


@pytest.fixture
async def loadtester() -> AsyncIterator[TestServer]:
    server = TestServer(create_app(LoadtesterConfig(host="127.0.0.1", port=0, kill_grace=0.5)))
    await server.start_server()
    yield server
    await server.close()


def canary_with(hooks: list[dict[str, Any]]) -> Canary:
    return Canary.from_dict(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateway"}]},
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10, "webhooks": hooks},
            },
        }
    )


async def test_manual_promotion_gate(loadtester: TestServer) -> None:
    url = loadtester.make_url
    canary = canary_with([{"name": "approval", "type": "confirm-promotion", "url": str(url("/gate/check"))}])
    async with WebhookRunner() as runner:
        (closed,) = await runner.run(canary, HookType.CONFIRM_PROMOTION, STEP)
        # What a user does with curl to approve the release.
        opener = canary_with([{"name": "open", "type": "pre-rollout", "url": str(url("/gate/open"))}])
        (opened,) = await runner.run(opener, HookType.PRE_ROLLOUT, STEP)
        (approved,) = await runner.run(canary, HookType.CONFIRM_PROMOTION, STEP)
    assert (closed.passed, closed.status_code) == (False, 403)
    assert opened.passed
    assert (approved.passed, approved.status_code) == (True, 200)


async def test_manual_rollback(loadtester: TestServer) -> None:
    url = loadtester.make_url
    canary = canary_with([{"name": "rollback", "type": "rollback", "url": str(url("/rollback/check"))}])
    async with WebhookRunner() as runner:
        (before,) = await runner.run(canary, HookType.ROLLBACK, STEP)
        opener = canary_with([{"name": "open", "type": "rollout", "url": str(url("/rollback/open"))}])
        await runner.run(opener, HookType.ROLLOUT, STEP)
        (after,) = await runner.run(canary, HookType.ROLLBACK, STEP)
    assert not before.passed
    assert after.passed


async def test_rollout_load_test_hook_passes_and_runs(loadtester: TestServer, tmp_path: Path) -> None:
    marker = tmp_path / "loaded"
    canary = canary_with(
        [
            {
                "name": "load-test",
                "type": "rollout",
                "url": str(loadtester.make_url("/")),
                "timeout": "5s",
                "metadata": {"cmd": f"echo load > {marker}"},
            },
            {
                "name": "acceptance-test",
                "type": "pre-rollout",
                "url": str(loadtester.make_url("/")),
                "timeout": "30s",
                "metadata": {"type": "bash", "cmd": "exit 1"},
            },
        ]
    )
    async with WebhookRunner() as runner:
        (load,) = await runner.run(canary, HookType.ROLLOUT, STEP)
        (acceptance,) = await runner.run(canary, HookType.PRE_ROLLOUT, STEP)
    assert (load.passed, load.status_code) == (True, 202)
    await loadtester.app[RUNNER].wait_idle()
    assert marker.read_text() == "load\n"
    assert (acceptance.passed, acceptance.status_code) == (False, 500)
    assert acceptance.error is not None and "exit code 1" in acceptance.error
