"""Fixtures of the Flagger conformance scenarios: the sandbox, a controller whose webhooks and Events are real (the
WebhookRunner calls a recording hook server over HTTP; Events go to the sandbox and to the canary's ``event`` hook),
and scripted metric values standing in for Prometheus (the e2e suite covers real queries).

The hook server records every call, gates and ``event`` hooks alike, in arrival order: one timeline of what Flagger
users see on their webhooks, against which each scenario holds Flagger's sequence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flaggerpy.analysis.analyzer import CanaryAnalyzer
from flaggerpy.analysis.base import MetricResult, StepContext
from flaggerpy.analysis.webhooks import WebhookRunner
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.events import EngineEvents
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.events import EventRecorder
from tests.integration.conftest import (  # noqa: F401  (fixtures shared with the integration suite)
    Cluster,
    ControllerFactory,
    cluster,
    crd_docs,
    kube,
    notifier,
    run_controller,
    sandbox,
    wait_for,
)
from tests.manifests import canary, deployment

# The words of workload readiness waits (flaggerpy.canary.workload.readiness), left out of timelines.
_READINESS_WAITS = ("waiting for rollout to finish", "is scaled to zero", " not ready")

def _own_wait(message: str) -> bool:
    """A wait Flagger has no Event for (route not yet accepted by the Gateway, a concurrency slot): flaggerpy's
    "Halt advancement <name>.<namespace> ..." (Flagger's own "Halt advancement" texts go on with "no values")."""
    return message.startswith("Halt advancement ") and not message.startswith("Halt advancement no values")


# What Flagger's e2e manifests write (test/gatewayapi/*.sh), with intervals short enough for CI.
INTERVAL = "400ms"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"


@dataclass(frozen=True)
class Call:
    """One request to the hook server: a webhook of ``type`` or an Event (``type`` "event")."""

    type: str
    name: str
    phase: str
    checksum: str
    message: str = ""
    event_type: str = ""


@dataclass
class Hooks:
    """The recording hook server: ``/hook/<type>/<name>`` answers 200 unless told otherwise in ``refuse``."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    def hook(self, hook_type: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
        """A Canary ``analysis.webhooks[]`` entry calling this server."""
        name = name or hook_type
        return {"name": name, "type": hook_type, "url": f"{self.url}/hook/{hook_type}/{name}", "timeout": "5s",
                **extra}

    def timeline(self) -> list[tuple[str, str]]:
        """("hook", type) and (Normal|Warning, message) in order, readiness waits left out: Flagger and flaggerpy
        both report a workload that is still rolling out, at ticks that depend on the cluster's timing."""
        out = []
        for call in self.calls:
            if call.type != "event":
                out.append(("hook", call.type))
            elif not any(text in call.message for text in _READINESS_WAITS) and not _own_wait(call.message):
                out.append((call.event_type, call.message))
        return out

    def payloads(self, hook_type: str) -> list[Call]:
        """The calls of one webhook type."""
        return [c for c in self.calls if c.type == hook_type]


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    """A running recording hook server."""
    state = Hooks()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        hook_type, name = request.match_info["type"], request.match_info["name"]
        meta = body.get("metadata") or {}
        state.calls.append(Call(hook_type, name, body.get("phase", ""), body.get("checksum", ""),
                                meta.get("eventMessage", ""), meta.get("eventType", "")))
        if f"{hook_type}/{name}" in state.refuse or hook_type in state.refuse:
            return web.Response(status=403, text="refused")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{type}/{name}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        await server.close()


@dataclass
class Metrics:
    """Scripted values for each metric of the Canary, by name; a metric without a value passes at 0."""

    values: dict[str, float] = field(default_factory=dict)

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """Judge each ``analysis.metrics[]`` entry's scripted value against its thresholdRange."""
        out = []
        for metric in canary.analysis.metrics or []:
            bounds = metric.effective_range
            value = self.values.get(metric.name, 0.0)
            passed = (bounds.min is None or value >= bounds.min) and (bounds.max is None or value <= bounds.max)
            out.append(MetricResult(metric.name, value, passed, min=bounds.min, max=bounds.max))
        return out


@pytest.fixture
def metrics() -> Metrics:
    """The scripted metric values."""
    return Metrics()


@pytest.fixture
async def webhooks() -> AsyncIterator[WebhookRunner]:
    """The real webhook runner (one HTTP session)."""
    async with WebhookRunner() as runner:
        yield runner


@pytest.fixture
def analyzer(metrics: Metrics, webhooks: WebhookRunner) -> CanaryAnalyzer:
    """Scripted metrics, real webhooks: the integration suite's ``run_controller`` runs its controller with it."""
    # The test double answers check_metrics as the MetricChecker would.
    return CanaryAnalyzer(metrics, webhooks)  # type: ignore[arg-type]


@pytest.fixture
def events(kube: KubeClient, webhooks: WebhookRunner) -> EngineEvents:  # noqa: F811
    """Real Events: recorded in the sandbox and sent to the canary's ``event`` hooks."""
    return EngineEvents(EventRecorder(kube), webhooks)


def sent(hooks: Hooks, prefix: str) -> bool:
    """Whether an Event starting with ``prefix`` has reached the ``event`` hook."""
    return any(c.type == "event" and c.message.startswith(prefix) for c in hooks.calls)


async def initialized(cluster: Cluster, hooks: Hooks, analysis: dict[str, Any], **spec: Any) -> None:  # noqa: F811
    """Create podinfo and its Canary, wait for the initialisation and its Event, then start the timeline afresh."""
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=analysis, **spec))
    await cluster.wait_phase("Initialized")
    await wait_for(lambda: sent(hooks, "Initialization done!"), 10)
    hooks.calls.clear()


async def released(cluster: Cluster, hooks: Hooks, until: str, last: str,  # noqa: F811
                   image: str = NEW_IMAGE) -> dict[str, Any]:
    """Roll out ``image``; the status once the canary reaches ``until`` and the Event starting ``last`` arrived."""
    await cluster.set_image(image)
    status = await cluster.wait_phase(until, within=30)
    await wait_for(lambda: sent(hooks, last), 10)
    return status
