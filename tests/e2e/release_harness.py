"""The real parts of an end-to-end release, wired together for tests.

- the sandbox cluster in this process, with the Gateway API and Flagger CRDs, a Gateway and real HTTP on it;
- a real Prometheus scraping the data plane's Envoy/Istio-style metrics every second;
- ``flaggerpy loadtester`` as a subprocess (pre-rollout and rollout webhooks start ``hey`` through it);
- a :class:`DataGate` webhook holding each traffic increase until Prometheus has the canary's traffic;
- ``flaggerpy run`` as a subprocess, pointed at the sandbox's kubeconfig and at that Prometheus;
- a :class:`RouteObserver` that records every version of every HTTPRoute and Canary as the sandbox commits them,
  and the data plane's per-backend request counters whenever it starts routing with new weights (the measured
  traffic split).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web

from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.gateway.match import Request
from flaggerpy.sandbox.gateway.table import Decision
from tests.e2e.prometheus_fixture import PrometheusServer, ScrapeTarget, prometheus_available
from tests.manifests import GATEWAY_NAME, GATEWAY_NAMESPACE, NAMESPACE, crd_documents, gateway, host_of
from tests.paths import REPO_ROOT
from tests.ports import free_port
from tests.tools import HEY_MISSING, PROMETHEUS_MISSING, hey_available

GATEWAY_GROUP = "gateway.networking.k8s.io"
ERROR_RATE_ANNOTATION = "sandbox.flaggerpy.io/error-rate"
LATENCY_ANNOTATION = "sandbox.flaggerpy.io/latency"
_PROCESS_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


def missing_tools() -> str | None:
    """Why the real-parts tests cannot run here, or None when prometheus and hey are installed."""
    missing = [message for message, ok in ((PROMETHEUS_MISSING, prometheus_available()), (HEY_MISSING, hey_available()))
               if not ok]
    return "; ".join(missing) or None


requires_tools = pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")


def route_weights(route: dict[str, Any] | None) -> dict[str, int]:
    """backend name → weight of the route's last (weighted) rule; empty for a missing route."""
    if not route:
        return {}
    rules = (route.get("spec") or {}).get("rules") or []
    if not rules:
        return {}
    return {b["name"]: int(b.get("weight", 1)) for b in rules[-1].get("backendRefs") or []}


# -- observation ------------------------------------------------------------------------------------------------


SIGMAS = 4.0  # a deviation this many standard deviations out is a routing bug, not chance (about 6 runs in 100,000)


@dataclass
class Window:
    """Requests the data plane sent to a canary's two backends while the route had one set of weights.

    ``weights`` (backend → weight) are those the data plane routed with; ``start``/``end`` are the (primary,
    canary) request counters when they came in force (the first request routed with them) and went away.
    """

    weights: dict[str, int]
    canary_weight: int
    start: tuple[int, int]
    end: tuple[int, int] | None = None

    @property
    def primary_requests(self) -> int:
        """Requests to the primary during the window (0 while it is open)."""
        return self.end[0] - self.start[0] if self.end else 0

    @property
    def canary_requests(self) -> int:
        """Requests to the canary during the window (0 while it is open)."""
        return self.end[1] - self.start[1] if self.end else 0

    @property
    def requests(self) -> int:
        """Requests to either backend during the window."""
        return self.primary_requests + self.canary_requests

    @property
    def measured_canary_percent(self) -> float:
        """The share of the window's requests the canary got, in percent."""
        return 100.0 * self.canary_requests / self.requests if self.requests else math.nan

    def tolerance(self) -> float:
        """Percentage points the measured share may differ from the weight by chance (4 binomial sigmas, >= 2)."""
        p = self.canary_weight / 100.0
        sigma = math.sqrt(p * (1 - p) / self.requests) * 100.0 if self.requests else math.inf
        return max(2.0, SIGMAS * sigma)


def pooled_tolerance(windows: list[Window]) -> float:
    """Percentage points the canary's share over all ``windows`` may differ from what their weights ask by chance.

    Each request is an independent draw with the window's weight, so the canary's total is a sum of binomials: its
    variance adds up window by window. Four sigmas of that, at least 2 points like a single window.
    """
    total = sum(w.requests for w in windows)
    variance = sum(w.requests * (w.canary_weight / 100) * (1 - w.canary_weight / 100) for w in windows)
    return max(2.0, SIGMAS * math.sqrt(variance) / total * 100.0) if total else math.inf


def assert_split_follows_weights(name: str, windows: list[Window], counted_by: str,
                                 min_window_requests: int = 50, boundary_slack: int = 0) -> None:
    """The canary's share of each window (of at least ``min_window_requests``) and of all of them pooled is within
    binomial bounds of the weights; ``counted_by`` says whose counts the windows hold (for the message).

    ``boundary_slack``: requests that may be counted in the window next to the one they were routed in, at each
    boundary (when windows are placed by observing a proxy, the requests in flight at that moment)."""
    measured = [w for w in windows if w.requests > 0]
    assert measured, f"{name}: no traffic was measured ({counted_by})"
    # A window of a few requests (the moments around a switch, with requests in flight) says nothing by itself.
    for window in (w for w in measured if w.requests >= min_window_requests):
        deviation = abs(window.measured_canary_percent - window.canary_weight)
        assert deviation <= window.tolerance() + 100.0 * boundary_slack / window.requests, (
            f"{name} ({counted_by}): weight {window.canary_weight}% but the canary got "
            f"{window.measured_canary_percent:.1f}% of {window.requests} requests")
    # Pooled over every window, chance evens out: the canary's total share must match the weights closely.
    expected = sum(w.canary_weight / 100 * w.requests for w in measured)
    received = sum(w.canary_requests for w in measured)
    total = sum(w.requests for w in measured)
    tolerance = pooled_tolerance(measured) + 100.0 * boundary_slack * len(measured) / total
    assert abs(received - expected) / total * 100 <= tolerance, (
        f"{name} ({counted_by}): the canary got {received} of {total} requests, the weights asked for "
        f"{expected:.0f} (allowed: {tolerance:.1f} points)")


@dataclass
class History:
    """Everything observed about one canary: route weights, statuses and traffic windows, in commit order."""

    name: str
    weights: list[dict[str, int]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    # Requests the data plane routed to the canary while no canary pod was ready (invariant 2, as traffic sees it).
    unready_picks: int = 0

    @property
    def canary_weights(self) -> list[int]:
        """The canary backend's weight in every distinct route version."""
        return [w.get(f"{self.name}-canary", 0) for w in self.weights]

    @property
    def phases(self) -> list[str]:
        """Distinct consecutive phases the Canary's status went through."""
        out: list[str] = []
        for status in self.statuses:
            phase = status.get("phase") or ""
            if phase and (not out or out[-1] != phase):
                out.append(phase)
        return out

    @property
    def phase(self) -> str:
        """The latest phase."""
        return self.phases[-1] if self.phases else ""


class RouteObserver:
    """Watches the sandbox in-process: every committed HTTPRoute and Canary version, and the traffic split.

    Traffic windows are placed by the data plane's own routing decisions, not by the route's commit: the observer
    wraps :meth:`DataPlane.decide`, and the first request routed with new weights closes the previous window. A
    commit reaches the data plane's table a programming pass later, and a change stream consumer later still; under
    CPU load that lag let hundreds of requests routed with the new weights land in the old window.
    """

    def __init__(self, sandbox: Sandbox, names: list[str], namespace: str = NAMESPACE) -> None:
        self._sb = sandbox
        self._namespace = namespace
        self.histories = {name: History(name) for name in names}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def start(self) -> None:
        """Subscribe now: later commits are all seen, and every later request is metered."""
        plane = self._sb.dataplane
        decide = plane.decide

        def metered(request: Request, gateway: tuple[str, str] | None = None) -> Decision:
            decision = decide(request, gateway)
            self._meter(decision)
            return decision

        # An instance attribute shadows the method for every caller (synthetic traffic and the real-HTTP proxy).
        plane.decide = metered  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._run(), name="e2e-observer")

    async def stop(self) -> None:
        """Stop watching and metering, and close every open traffic window."""
        vars(self._sb.dataplane).pop("decide", None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for history in self.histories.values():
            self._close_window(history)

    def _requests(self, service: str) -> int:
        return self._sb.dataplane.stats(self._namespace, service).requests

    def _counters(self, history: History) -> tuple[int, int]:
        return self._requests(f"{history.name}-primary"), self._requests(f"{history.name}-canary")

    def _close_window(self, history: History) -> None:
        if history.windows and history.windows[-1].end is None:
            history.windows[-1].end = self._counters(history)

    def _meter(self, decision: Decision) -> None:
        rule = decision.rule
        if rule is None or rule.route.namespace != self._namespace:
            return
        history = self.histories.get(rule.route.name)
        if history is None:
            return
        chosen = decision.backend
        if chosen is not None and chosen.ref.name == f"{history.name}-canary":
            workload = self._sb.dataplane.workload_of(chosen.ref)
            if workload is None or not workload.behaviour.ready:
                history.unready_picks += 1
        weights = {backend.ref.name: backend.weight for backend in rule.backends}
        if history.windows and history.windows[-1].weights == weights:
            return
        self._close_window(history)
        history.windows.append(Window(weights, weights.get(f"{history.name}-canary", 0), self._counters(history)))

    def window_requests(self, name: str) -> int:
        """Requests to either backend of canary ``name`` since the data plane began routing with its latest
        committed weights (0 before the first request with them)."""
        history = self.histories[name]
        window = history.windows[-1] if history.windows else None
        if window is None or window.end is not None or not history.weights or window.weights != history.weights[-1]:
            return 0
        primary, canary = self._counters(history)
        return primary - window.start[0] + canary - window.start[1]

    async def _run(self) -> None:
        async for change in self._sb.cluster.changes():
            meta = change.object.get("metadata") or {}
            history = self.histories.get(meta.get("name", ""))
            if history is None or meta.get("namespace") != self._namespace:
                continue
            if (change.group, change.plural) == (GATEWAY_GROUP, "httproutes") and change.type != "DELETED":
                weights = route_weights(change.object)
                if weights and (not history.weights or history.weights[-1] != weights):
                    history.weights.append(weights)
            elif (change.group, change.plural) == ("flagger.app", "canaries") and change.type != "DELETED":
                status = change.object.get("status") or {}
                if not history.statuses or history.statuses[-1] != status:
                    history.statuses.append(copy.deepcopy(status))
            self._changed.set()

    async def wait_phase(self, name: str, phases: set[str], within: float) -> str:
        """Wait until canary ``name`` reaches one of ``phases``; returns it."""
        history = self.histories[name]
        async with asyncio.timeout(within):
            while history.phase not in phases:
                self._changed.clear()
                await self._changed.wait()
        return history.phase


# -- processes --------------------------------------------------------------------------------------------------


class Subprocess:
    """A flaggerpy command in its own process; stopped with SIGTERM (SIGKILL when it lingers)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env or {}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process with its output going to ``log_path``."""
        with self.log_path.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )

    def tail(self, size: int = 3000) -> str:
        """The end of the process's output (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""

    async def wait_http(self, url: str) -> None:
        """Wait until ``url`` answers 200 (or the process exits)."""
        async with aiohttp.ClientSession() as session:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _PROCESS_READY_TIMEOUT
            while loop.time() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url}:\n{self.tail()}")

    async def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        return process.returncode


def flaggerpy_argv(*args: str) -> list[str]:
    """argv running ``flaggerpy <args>`` with this interpreter (no reliance on an installed script)."""
    return [sys.executable, "-m", "flaggerpy.cli", *args]


@dataclass
class Release:
    """The running real parts of one end-to-end test."""

    sandbox: Sandbox
    prometheus: PrometheusServer
    loadtester_url: str
    gateway_port: int
    controller: Subprocess
    loadtester: Subprocess
    data_gate: DataGate

    async def create(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object in the sandbox."""
        return await self.sandbox.cluster.create(group, plural, copy.deepcopy(obj))

    async def release(self, name: str, image: str, annotations: dict[str, str] | None = None) -> None:
        """Roll out a new revision of Deployment ``name``: a new image and new pod-template annotations."""
        dep = self.sandbox.cluster.get("apps", "deployments", NAMESPACE, name)
        assert dep is not None, f"deployment {name} missing"
        dep = copy.deepcopy(dep)
        dep["metadata"].pop("resourceVersion", None)
        template = dep["spec"]["template"]
        template["spec"]["containers"][0]["image"] = image
        template["metadata"]["annotations"] = dict(annotations or {})
        await self.sandbox.cluster.update("apps", "deployments", dep)

    async def send(self, name: str, requests: int) -> None:
        """``requests`` plain GETs to canary ``name``'s host through the Gateway, one after another."""
        url = f"http://127.0.0.1:{self.gateway_port}/"
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for _ in range(requests):
                async with session.get(url, headers={"Host": host_of(name)}) as answer:
                    await answer.read()

    def load_webhooks(self, name: str, seconds: int, rps_per_worker: int, workers: int) -> list[dict[str, Any]]:
        """``pre-rollout`` and ``rollout`` webhooks asking the load tester to run ``hey`` against the canary's host.

        The pre-rollout one starts the load before the first traffic shift, so the canary gets requests from the
        moment it has a weight; the rollout one (the same command, which the load tester does not start twice)
        restarts it should a long release outlast it.
        """
        url = f"http://127.0.0.1:{self.gateway_port}/"
        command = f"hey -z {seconds}s -q {rps_per_worker} -c {workers} -host {host_of(name)} {url}"
        return [{"name": f"load-test-{kind}", "type": kind, "url": f"{self.loadtester_url}/", "timeout": "5s",
                 "metadata": {"type": "cmd", "cmd": command}} for kind in ("pre-rollout", "rollout")]

    def data_gate_webhooks(self) -> list[dict[str, Any]]:
        """``confirm-traffic-increase`` and ``confirm-promotion`` webhooks to the :class:`DataGate`: no step, the
        last one included, ends before its traffic was measured."""
        return [{"name": f"canary-data-{kind}", "type": kind, "url": self.data_gate.url, "timeout": "5s"}
                for kind in ("confirm-traffic-increase", "confirm-promotion")]


class LocalWebhook:
    """A webhook server on a free loopback port; subclasses answer POSTs in ``_confirm``."""

    _runner: web.AppRunner | None = None
    url = ""

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/", self._confirm)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _confirm(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class DataGate(LocalWebhook):
    """A ``confirm-traffic-increase`` webhook that holds a canary's weight until Prometheus has its traffic.

    A check with ``onNoData: skip`` passes while Prometheus has no canary samples yet; under CPU contention scrapes
    lag and several steps in a row could pass on no evidence (a bad release climbing to maxWeight). The gate lets
    the first shift through (at weight 0 the canary cannot have traffic) and holds every later increase until the
    canary's requests are in Prometheus with at least two samples in the checks' window (what ``rate`` needs).
    The checks themselves are unchanged: they still fail the release on the data once it is there.
    """

    def __init__(self, sandbox: Sandbox, prometheus: PrometheusServer, window: str,
                 samples_query: Callable[[str, str, str], str]) -> None:
        self._sb = sandbox
        self._prometheus = prometheus
        self._window = window
        self._samples_query = samples_query
        self._enough: Callable[[str], bool] = lambda name: True

    def hold_until(self, enough: Callable[[str], bool]) -> None:
        """Also hold canary ``name`` at its weight until ``enough(name)`` (e.g. the test has measured enough
        requests at that weight for its split comparison to mean something)."""
        self._enough = enough

    async def _confirm(self, request: web.Request) -> web.Response:
        payload = await request.json()
        name, namespace = str(payload.get("name")), str(payload.get("namespace"))
        canary = self._sb.cluster.get("flagger.app", "canaries", namespace, name) or {}
        if not int((canary.get("status") or {}).get("canaryWeight") or 0):
            return web.Response(text="first shift\n")
        query = self._samples_query(namespace, name, self._window)
        try:
            result = (await self._prometheus.query(query)).get("data", {}).get("result") or []
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=503, text=f"prometheus: {exc}\n")
        samples = float(result[0]["value"][1]) if result else 0.0
        if samples < 2:
            return web.Response(status=403, text=f"{samples:g} samples of canary traffic in {self._window}\n")
        if not self._enough(name):
            return web.Response(status=403, text="not enough traffic measured at this weight yet\n")
        return web.Response(text="canary traffic scraped\n")


class GatewayParts(Protocol):
    """The Gateway an end-to-end release runs on: the sandbox's own data plane, or a real implementation."""

    sandbox_options: dict[str, Any]

    async def start(self, sb: Sandbox, workdir: Path) -> tuple[int, list[ScrapeTarget]]:
        """Create the Gateway (and start its process); the port it serves HTTP on and what Prometheus scrapes."""
        ...

    async def stop(self) -> None:
        """Stop what ``start`` started."""
        ...

    def samples_query(self, namespace: str, name: str, window: str) -> str:
        """PromQL counting the canary's request samples over ``window`` (for the :class:`DataGate`)."""
        ...


class SandboxGateway:
    """The sandbox's simulated data plane, with real HTTP on its Gateway and its Envoy-style metrics."""

    sandbox_options: dict[str, Any] = {}

    async def start(self, sb: Sandbox, workdir: Path) -> tuple[int, list[ScrapeTarget]]:
        """Create the Gateway and listen for it."""
        await sb.cluster.create(GATEWAY_GROUP, "gateways", gateway())
        port = await sb.dataplane.listen(GATEWAY_NAMESPACE, GATEWAY_NAME)
        return port, [ScrapeTarget(f"127.0.0.1:{sb.port}", "/sandbox/dataplane/metrics", job="gateway")]

    async def stop(self) -> None:
        """Nothing to stop: the sandbox closes its listeners."""

    def samples_query(self, namespace: str, name: str, window: str) -> str:
        """Envoy's per-cluster counter, with Contour's cluster names."""
        return (f'sum(count_over_time(envoy_cluster_upstream_rq{{envoy_cluster_name=~"{namespace}_{name}-canary_.+"'
                f'}}[{window}]))')


@contextlib.asynccontextmanager
async def real_parts(workdir: Path, metric_window: str = "6s",
                     gateway_parts: GatewayParts | None = None) -> AsyncIterator[Release]:
    """Start the sandbox, the Gateway (the sandbox's own with real HTTP, unless ``gateway_parts`` says otherwise),
    Prometheus, the load tester, the controller and a :class:`DataGate` judging data over ``metric_window`` (the
    metric checks' ``interval``)."""
    parts: GatewayParts = gateway_parts or SandboxGateway()
    async with Sandbox(ready_delay=0.05, bookmark_interval=1.0, **parts.sandbox_options) as sb:
        for doc in crd_documents():
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        for namespace in (NAMESPACE, GATEWAY_NAMESPACE):
            await sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
        try:
            gateway_port, targets = await parts.start(sb, workdir)
            async with PrometheusServer(targets, workdir / "prometheus") as prometheus:
                lt_port, ctl_port = free_port(), free_port()
                loadtester = Subprocess("loadtester", flaggerpy_argv(
                    "loadtester", "--host", "127.0.0.1", "--port", str(lt_port), "--timeout", "2m",
                    "--log-level", "warning"), workdir / "loadtester.log")
                controller = Subprocess("controller", flaggerpy_argv(
                    "run", "--kubeconfig", str(sb.kubeconfig_path), "--metrics-server", prometheus.url,
                    "--port", str(ctl_port), "--listen-address", "127.0.0.1", "--threadiness", "4",
                    "--log-level", "info"), workdir / "controller.log")
                gate = DataGate(sb, prometheus, metric_window, parts.samples_query)
                try:
                    await gate.start()
                    await loadtester.start()
                    await controller.start()
                    await loadtester.wait_http(f"http://127.0.0.1:{lt_port}/healthz")
                    await controller.wait_http(f"http://127.0.0.1:{ctl_port}/readyz")
                    yield Release(sb, prometheus, f"http://127.0.0.1:{lt_port}", gateway_port, controller,
                                  loadtester, gate)
                finally:
                    await controller.stop()
                    await loadtester.stop()
                    await gate.stop()
        finally:
            await parts.stop()
