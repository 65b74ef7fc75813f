"""Shared fixtures for integration tests: a sandbox cluster with the CRDs and a Gateway, and an in-process controller
that talks to it over HTTP through the sandbox's kubeconfig, exactly as it would to a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from flaggerpy.analysis.base import HookType, MetricResult, StepContext, WebhookResult
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.sandbox import Sandbox
from tests.manifests import (
    GATEWAY_NAMESPACE,
    NAMESPACE,
    crd_documents,
    gateway,
)
from tests.paths import GATEWAY_API_CRDS

GATEWAY_CRDS = GATEWAY_API_CRDS
CRD_GROUP = "apiextensions.k8s.io"


# -- test doubles for the analysis contract ---------------------------------------------------------------------


@dataclass
class ScriptedAnalyzer:
    """An Analyzer whose checks pass or fail on command; records every call (the real one lands separately)."""

    metrics_pass: bool = True
    gates: dict[HookType, bool] = field(default_factory=dict)
    rollback: bool = False
    metric_calls: list[StepContext] = field(default_factory=list)
    hook_calls: list[tuple[HookType, StepContext]] = field(default_factory=list)

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """One synthetic ``request-success-rate`` check that passes or fails as scripted."""
        self.metric_calls.append(step)
        value = 99.9 if self.metrics_pass else 42.0
        return [MetricResult("request-success-rate", value, self.metrics_pass, min=99.0)]

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """Gates answer as scripted in ``gates``; a rollback hook answers ``rollback``; others always pass."""
        self.hook_calls.append((hook_type, step))
        if hook_type is HookType.ROLLBACK:
            return [WebhookResult("rollback-gate", hook_type, self.rollback)] if self.rollback else []
        if hook_type in self.gates:
            return [WebhookResult(f"{hook_type}-gate", hook_type, self.gates[hook_type])]
        return []


@dataclass
class RecordingNotifier:
    """A Notifier that keeps the messages it was asked to send."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def notify(self, canary: Canary, message: str, severity: str, fields: dict[str, str]) -> None:
        """Record (severity, message)."""
        self.sent.append((severity, message))


@dataclass
class RecordingEvents:
    """An EventSink that keeps (type, reason, message) per canary key."""

    events: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str,
                       canary: Any = None) -> None:
        """Record the Event."""
        meta = obj.get("metadata") or {}
        self.events.append((f"{meta.get('namespace')}/{meta.get('name')}", type_, reason, message))

    def messages(self, key: str) -> list[str]:
        """Messages recorded for the canary ``namespace/name``, in order."""
        return [m for k, _, _, m in self.events if k == key]


# -- cluster helpers --------------------------------------------------------------------------------------------


class ClusterView:
    """The helpers a scenario uses to arrange and observe a cluster, over ``get`` and ``update``: the sandbox's
    :class:`Cluster` here and the real cluster's (tests/real/harness.py), so the same scenarios run on both."""

    wait_within = 20.0
    """Default bound of :meth:`wait_phase`, in seconds."""

    def get(self, group: str, plural: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        """The object, or None."""
        raise NotImplementedError

    async def update(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object, last write wins."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Make the following reads show the present (a view fed by watches catches up); nothing by default."""

    def canary(self, name: str = "podinfo") -> dict[str, Any]:
        """The Canary (it must exist)."""
        obj = self.get("flagger.app", "canaries", name)
        assert obj is not None, f"canary {name} missing"
        return obj

    def status(self, name: str = "podinfo") -> dict[str, Any]:
        """The Canary's status."""
        return self.canary(name).get("status") or {}

    def route_weights(self, name: str = "podinfo") -> list[tuple[str, int]]:
        """(backend, weight) of every backendRef of the route's last (weighted) rule."""
        route = self.get("gateway.networking.k8s.io", "httproutes", name)
        assert route is not None, f"httproute {name} missing"
        rule = route["spec"]["rules"][-1]
        return [(b["name"], b.get("weight", 1)) for b in rule["backendRefs"]]

    async def set_image(self, image: str, name: str = "podinfo") -> None:
        """Roll out a new revision of the Deployment ``name``."""
        dep = self.get("apps", "deployments", name)
        assert dep is not None
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await self.update("apps", "deployments", dep)

    async def roll_out(self, image: str, name: str = "podinfo") -> None:
        """Wait until the controller has initialised canary ``name``, then roll out ``image`` to its Deployment."""
        await self.wait_phase("Initialized", name)
        await self.set_image(image, name)

    async def wait_phase(self, phase: str, name: str = "podinfo", within: float | None = None) -> dict[str, Any]:
        """Wait until the Canary reaches ``phase`` (at most ``within`` or :attr:`wait_within` seconds); returns its
        status."""
        await wait_for(lambda: self.status(name).get("phase") == phase, within or self.wait_within,
                       lambda: f"canary {name} phase {self.status(name).get('phase')!r}, wanted {phase}")
        await self.settle()
        return self.status(name)


class Cluster(ClusterView):
    """Small in-process helpers over the sandbox store for arranging and observing a test."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.cluster = sandbox.cluster

    def get(self, group: str, plural: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.cluster.get(group, plural, namespace, name)

    async def create(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object."""
        return await self.cluster.create(group, plural, copy.deepcopy(obj))

    async def update(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object (without resourceVersion: last write wins)."""
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        return await self.cluster.update(group, plural, obj)


async def wait_for(predicate: Callable[[], bool], within: float = 10.0,
                   describe: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` every 20 ms until true; fail with ``describe()`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(describe() if describe else "condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def crd_docs() -> list[dict[str, Any]]:
    """The Gateway API v1.6.1 CRDs and, when present, flaggerpy's Flagger CRDs (parsed once per session)."""
    return crd_documents()


# -- fixtures ---------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def integration_sandbox(crd_docs: list[dict[str, Any]], **options: Any) -> AsyncIterator[Sandbox]:
    """A sandbox with Gateway API and Flagger CRDs, namespaces ``test`` and ``gateway``, and a Gateway; ``options``
    go to :class:`Sandbox` (e.g. ``keda=True``)."""
    async with Sandbox(ready_delay=0.05, bookmark_interval=1.0, **options) as sb:
        for doc in crd_docs:
            await sb.cluster.create(CRD_GROUP, "customresourcedefinitions", copy.deepcopy(doc))
        for namespace in (NAMESPACE, GATEWAY_NAMESPACE):
            await sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
        await sb.cluster.create("gateway.networking.k8s.io", "gateways", gateway())
        yield sb


@pytest.fixture
async def sandbox(crd_docs: list[dict[str, Any]]) -> AsyncIterator[Sandbox]:
    """The sandbox of :func:`integration_sandbox`."""
    async with integration_sandbox(crd_docs) as sb:
        yield sb


def controller_settings(engine: EngineSettings | None = None, **overrides: Any) -> ControllerSettings:
    """What integration tests run controllers with: fast polling and fast watch reconnects; ``overrides`` are
    further :class:`ControllerSettings` fields."""
    options: dict[str, Any] = {"threadiness": 4, "sync_timeout": 10.0, **overrides}
    return ControllerSettings(
        engine=engine or EngineSettings(poll_interval=0.2),
        watch=WatchSettings(backoff_initial=0.05, backoff_max=0.5, backoff_jitter=0.05),
        **options,
    )


@pytest.fixture
def cluster(sandbox: Sandbox) -> Cluster:
    """Helpers over the sandbox store."""
    return Cluster(sandbox)


@pytest.fixture
async def kube(sandbox: Sandbox) -> AsyncIterator[KubeClient]:
    """A KubeClient talking HTTP to the sandbox through its kubeconfig."""
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as client:
        yield client


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    """The Analyzer test double."""
    return ScriptedAnalyzer()


@pytest.fixture
def notifier() -> RecordingNotifier:
    """The Notifier test double."""
    return RecordingNotifier()


@pytest.fixture
def events() -> RecordingEvents:
    """The Event sink test double."""
    return RecordingEvents()


ControllerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Controller]]


@pytest.fixture
def run_controller(
    kube: KubeClient, analyzer: ScriptedAnalyzer, notifier: RecordingNotifier, events: RecordingEvents
) -> ControllerFactory:
    """``async with run_controller(**engine_settings) as ctl:`` runs a controller until the block ends."""

    @contextlib.asynccontextmanager
    async def factory(**engine: Any) -> AsyncIterator[Controller]:
        settings = controller_settings(EngineSettings(poll_interval=0.2, **engine))
        controller = Controller(kube, analyzer, notifier, events, settings)
        await controller.start()
        try:
            yield controller
        finally:
            await controller.stop()

    return factory


