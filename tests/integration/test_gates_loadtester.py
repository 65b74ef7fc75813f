"""Manual gates end to end: the real engine and CanaryAnalyzer call a real load tester's gate endpoints.

A user holds a release with ``confirm-rollout`` / ``confirm-promotion`` hooks on ``/gate/check`` and releases it
with ``curl -d '{"name": ..., "namespace": ...}' <loadtester>/gate/open``; ``/rollback/open`` aborts a running
analysis. These tests do exactly that over loopback HTTP, with no test double between the engine and the webhooks.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.checks import MetricChecker
from flaggerpy.analysis.webhooks import WebhookRunner, WebhookSettings
from flaggerpy.apis.flagger import AlertProvider, MetricTemplate
from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.loadtester.server import create_app
from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, wait_for
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
PRIMARY, CANARY = "podinfo-primary", "podinfo-canary"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)


class NoObjects:
    """An ObjectLookup for canaries without metrics: nothing is ever referenced, so nothing exists."""

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        """No MetricTemplates."""
        return None

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        """No AlertProviders."""
        return None

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """No Secrets."""
        return None


@pytest.fixture
async def loadtester() -> AsyncIterator[TestServer]:
    """The load tester's HTTP app on a loopback port."""
    server = TestServer(create_app(LoadtesterConfig(host="127.0.0.1", port=0, kill_grace=0.5)), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def analyzer() -> AsyncIterator[CanaryAnalyzer]:
    """The production analyzer (overrides conftest's scripted double): real HTTP webhooks, no metrics."""
    settings = WebhookSettings(default_timeout=5.0, backoff_min=0.05, backoff_max=0.2)
    async with MetricChecker(NoObjects()) as metrics, WebhookRunner(settings=settings) as webhooks:
        yield CanaryAnalyzer(metrics, webhooks)


def gated_canary(hook_type: str, url: str, analysis: dict[str, Any]) -> dict[str, Any]:
    """The default test Canary with one webhook of ``hook_type`` at ``url`` and no metrics."""
    hooks = [{"name": f"{hook_type}-gate", "type": hook_type, "url": url}]
    return canary(analysis={**analysis, "webhooks": hooks})


async def press(loadtester: TestServer, path: str, name: str = "podinfo") -> None:
    """What a user does with curl: POST the canary's name and namespace to a gate endpoint."""
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session, session.post(
        str(loadtester.make_url(path)), json={"name": name, "namespace": NAMESPACE}
    ) as response:
        assert response.status == 202, await response.text()


def image_of(cluster: Cluster, name: str) -> str:
    dep = cluster.get("apps", "deployments", name)
    assert dep is not None, f"deployment {name} missing"
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


async def holds(cluster: Cluster, phase: str, intervals: int, interval: float) -> list[list[tuple[str, int]]]:
    """Assert the canary stays in ``phase`` for ``intervals`` analysis intervals; the route weights seen meanwhile.

    Holding is the absence of change, so this has to watch for a while; it samples once per interval, each time
    after the engine had a full interval to (wrongly) move on.
    """
    seen: list[list[tuple[str, int]]] = []
    for _ in range(intervals):
        await asyncio.sleep(interval)
        assert cluster.status().get("phase") == phase, f"left {phase}: {cluster.status()}"
        seen.append(cluster.route_weights())
    return seen


async def test_confirm_rollout_waits_for_the_gate_then_succeeds(
    cluster: Cluster, run_controller: ControllerFactory, loadtester: TestServer, events: RecordingEvents
) -> None:
    analysis = {"interval": "500ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries",
                         gated_canary("confirm-rollout", str(loadtester.make_url("/gate/check")), analysis))
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Waiting")
        weights = await holds(cluster, "Waiting", intervals=3, interval=0.5)
        assert all(w == [(PRIMARY, 100), (CANARY, 0)] for w in weights), weights
        assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
        assert image_of(cluster, PRIMARY) != NEW_IMAGE
        await press(loadtester, "/gate/open")
        await cluster.wait_phase("Succeeded")
    assert image_of(cluster, PRIMARY) == NEW_IMAGE
    assert cluster.route_weights() == [(PRIMARY, 100), (CANARY, 0)]
    assert "Halt podinfo.test advancement waiting for approval confirm-rollout-gate" in events.messages("test/podinfo")


async def test_confirm_promotion_holds_at_max_weight_until_the_gate_opens(
    cluster: Cluster, run_controller: ControllerFactory, loadtester: TestServer, events: RecordingEvents
) -> None:
    analysis = {"interval": "500ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries",
                         gated_canary("confirm-promotion", str(loadtester.make_url("/gate/check")), analysis))
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        status = await cluster.wait_phase("WaitingPromotion")
        assert status["canaryWeight"] == 20
        weights = await holds(cluster, "WaitingPromotion", intervals=3, interval=0.5)
        assert all(w == [(PRIMARY, 80), (CANARY, 20)] for w in weights), weights
        assert cluster.status()["canaryWeight"] == 20
        assert image_of(cluster, PRIMARY) != NEW_IMAGE
        await press(loadtester, "/gate/open")
        await cluster.wait_phase("Succeeded")
    assert image_of(cluster, PRIMARY) == NEW_IMAGE
    assert cluster.route_weights() == [(PRIMARY, 100), (CANARY, 0)]
    assert ("Halt podinfo.test advancement waiting for promotion approval confirm-promotion-gate"
            in events.messages("test/podinfo"))


async def test_rollback_gate_aborts_a_running_analysis(
    cluster: Cluster, run_controller: ControllerFactory, loadtester: TestServer, events: RecordingEvents
) -> None:
    # Enough steps that the analysis is still running when the rollback is requested.
    analysis = {"interval": "500ms", "threshold": 2, "maxWeight": 50, "stepWeight": 10}
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries",
                         gated_canary("rollback", str(loadtester.make_url("/rollback/check")), analysis))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        primary_spec = copy.deepcopy(cluster.get("apps", "deployments", PRIMARY)["spec"])
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("phase") == "Progressing"
                       and int(cluster.status().get("canaryWeight") or 0) >= 10, 10,
                       lambda: f"analysis never shifted traffic: {cluster.status()}")
        assert cluster.status()["canaryWeight"] < 50
        await press(loadtester, "/rollback/open")
        status = await cluster.wait_phase("Failed")
    assert "Rolling back podinfo.test manual webhook invoked" in events.messages("test/podinfo")
    assert status["canaryWeight"] == 0
    assert cluster.route_weights() == [(PRIMARY, 100), (CANARY, 0)]
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
    # Invariant 3: a failed release never touches the primary.
    assert cluster.get("apps", "deployments", PRIMARY)["spec"] == primary_spec
    assert image_of(cluster, PRIMARY) != NEW_IMAGE
