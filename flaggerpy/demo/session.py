"""One demo run: sandbox, metrics backend, controller, sample app, traffic, a release, and its verdict."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flaggerpy.analysis.base import MetricResult, StepContext
from flaggerpy.analysis.builtin import FLAVOUR_ANNOTATION
from flaggerpy.apis.flagger import Canary
from flaggerpy.dashboard.server import DashboardSettings, serve
from flaggerpy.demo import manifests, traefik
from flaggerpy.demo.controller import running_controller
from flaggerpy.demo.errors import DemoError
from flaggerpy.demo.prometheus import PrometheusError, RealPrometheus, find_binary
from flaggerpy.demo.traefik import ProxyTraffic, TraefikProcess, find_traefik
from flaggerpy.demo.view import Reporter, Traffic
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.resources import CANARIES, CRDS, DEPLOYMENTS, METRICTEMPLATES, NAMESPACES
from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.promql.server import PromQLSettings

GATEWAYCLASSES = Resource(manifests.GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", namespaced=False)
GATEWAYS = Resource(manifests.GATEWAY_GROUP, "v1", "gateways", "Gateway")
TERMINAL = ("Succeeded", "Failed")
# Seconds a finished release may take to put 100% back on the primary after its terminal phase is written.
SETTLE_TIMEOUT = 10.0
# Seconds between scrapes of the data plane: four per analysis interval, the ratio of Flagger's 1m interval to a
# 15s scrape, so the first check after traffic reaches the canary already has samples to take a rate of.
SCRAPE_INTERVAL = 0.5
# How long a Deployment takes to become ready in the sandbox: short, but long enough to see the wait.
READY_DELAY = 0.3
BACKENDS = {"primary": f"{manifests.APP}-primary", "canary": f"{manifests.APP}-canary"}


@dataclass(frozen=True)
class Options:
    """What the user asked for."""

    faulty: bool = False
    prometheus: str = "auto"
    keep: bool = False
    rps: float = 80.0
    timing: manifests.Timing = field(default_factory=manifests.Timing)
    timeout: float = 120.0
    gateway_crds: str | None = None
    metrics_port: int = 0
    """Port of the controller's /metrics, /healthz and /readyz on 127.0.0.1; 0: a free one."""
    dashboard_port: int = 0
    """Port of the web dashboard on 127.0.0.1; 0: a free one."""
    gateway: str = "sandbox"
    """The Gateway carrying the release: the sandbox's simulated one, or ``traefik`` (the real binary)."""


@dataclass(frozen=True)
class Outcome:
    """How the release ended and whether that is what the demo expected.

    ``healthy`` checks the end state behind the phase: all traffic on the primary, and the primary running the new
    version after a promotion or the old one after a rollback.
    """

    phase: str
    expected: str
    healthy: bool
    summary: str
    latest: str = ""
    """With --keep, what became of the latest release the user started, when there was one."""

    @property
    def ok(self) -> bool:
        """Whether the release ended as expected, in the state it should have left behind."""
        return self.phase == self.expected and self.healthy


def resolve_backend(choice: str) -> str | None:
    """The prometheus binary to run, or None for the sandbox's own PromQL; DemoError when ``real`` is impossible."""
    binary = find_binary()
    if choice == "real" and binary is None:
        raise DemoError("--prometheus real: no 'prometheus' executable on PATH (use auto or sandbox)")
    return binary if choice in ("real", "auto") else None


@contextlib.asynccontextmanager
async def metrics_backend(
    sandbox: Sandbox, choice: str, note: Callable[[str], None], traefik: TraefikProcess | None = None,
) -> AsyncIterator[tuple[str, str]]:
    """(query API URL, description) of a real Prometheus scraping the data plane (or ``traefik``'s metrics), or of
    the sandbox's PromQL.

    With ``auto``, a Prometheus that fails to start is reported through ``note`` and the sandbox's PromQL is used.
    Traefik's metrics need a real Prometheus: the sandbox's PromQL only knows the data plane's counters.
    """
    binary = resolve_backend(choice)
    if traefik is not None and binary is None:
        raise DemoError("--gateway traefik needs a real Prometheus to read Traefik's metrics: install prometheus "
                        "(apt-get install prometheus) and use --prometheus auto or real")
    if binary is not None:
        target, path = ((traefik.metrics_target, "/metrics") if traefik is not None
                        else (f"{sandbox.host}:{sandbox.port}", "/sandbox/dataplane/metrics"))
        prometheus = RealPrometheus(binary, target, path, f"{int(SCRAPE_INTERVAL * 1000)}ms")
        try:
            await prometheus.start()
        except PrometheusError as exc:
            await prometheus.stop()
            if choice != "auto" or traefik is not None:
                raise
            note(f"note: {exc}; using the sandbox's PromQL instead")
        except BaseException:
            # Ctrl-C while it starts: it runs in its own session, so nobody else would stop it.
            await prometheus.stop()
            raise
        else:
            try:
                yield prometheus.url, f"Prometheus at {prometheus.url}"
            finally:
                await prometheus.stop()
            return
    if sandbox.promql is None:
        raise DemoError("the sandbox runs no data plane, so it has no PromQL endpoint")
    sandbox.promql.settings = PromQLSettings(scrape_interval=SCRAPE_INTERVAL)
    sandbox.promql.activate()
    yield f"{sandbox.url}/sandbox/prometheus", "sandbox PromQL"


class Demo:
    """Runs one demo and reports to ``reporter``."""

    def __init__(self, options: Options, reporter: Reporter) -> None:
        self.options = options
        self.reporter = reporter
        self._changed = asyncio.Event()
        self._canary_status: dict[str, Any] = {}
        self._weights: tuple[int, int] | None = None
        # Set once the release is under way: a terminal phase seen before that belongs to no release of ours.
        self._saw_progress = False
        # The revision the app's Deployment runs, and what the demo knows of its release (0: the initial version).
        self._image = ""
        self._release_number = 0
        self._release_started = 0.0
        self._release_progressed = False
        self._release_outcome = ""
        self._aborted = False
        self._image_seen = False
        # The traffic window: when the route's current weights took effect, and each backend's counters then.
        self._window: tuple[float, dict[str, tuple[int, int]]] | None = None
        self._sandbox: Sandbox | None = None
        # With --gateway traefik: the Traefik process and the real HTTP load sent through it.
        self._traefik = TraefikProcess(find_traefik()) if options.gateway == "traefik" else None
        self._proxy_traffic: ProxyTraffic | None = None

    @property
    def canary_status(self) -> dict[str, Any]:
        """The demo Canary's status as last seen by the watch (empty before it has one)."""
        return dict(self._canary_status)

    @property
    def expected(self) -> str:
        """The phase this run should end in."""
        return "Failed" if self.options.faulty else "Succeeded"

    async def run(self) -> Outcome:
        """The whole demo; the Outcome says how the release ended. DemoError when it cannot get that far."""
        report = self.reporter
        report.stage("starting the sandbox cluster")
        options = dict(traefik.SANDBOX_OPTIONS) if self._traefik is not None else {}
        async with Sandbox(ready_delay=READY_DELAY, **options) as sandbox:
            self._sandbox = sandbox
            watcher = asyncio.create_task(self._watch(sandbox), name="demo-watch")
            meter = asyncio.create_task(self._measure(sandbox), name="demo-traffic")
            try:
                report.stage("starting the metrics backend")
                async with metrics_backend(sandbox, self.options.prometheus, report.line,
                                           self._traefik) as (metrics_url, backend):
                    report.state.metrics_backend = backend
                    return await self._release(sandbox, metrics_url, backend)
            finally:
                for task in (watcher, meter):
                    task.cancel()
                await asyncio.gather(watcher, meter, return_exceptions=True)
                if self._proxy_traffic is not None:
                    await self._proxy_traffic.stop()
                if self._traefik is not None:
                    await self._traefik.stop()

    async def _release(self, sandbox: Sandbox, metrics_url: str, backend: str) -> Outcome:
        report = self.reporter
        report.stage(f"installing CRDs, a Gateway and {manifests.APP} {manifests.FIRST_VERSION} (metrics: {backend})")
        async with KubeClient(str(sandbox.kubeconfig_path)) as kube:
            await self._install(kube, metrics_url)
            async with running_controller(sandbox.kubeconfig_path, metrics_url, self._on_metrics,
                                          self.options.metrics_port) as running, \
                    serve(DashboardSettings(kubeconfig=str(sandbox.kubeconfig_path),
                                            port=self.options.dashboard_port)) as dashboard:
                report.telemetry(running.telemetry_url)
                report.dashboard(dashboard.canary_url(manifests.NAMESPACE, manifests.APP))
                if self._traefik is not None:
                    self._proxy_traffic = ProxyTraffic(self._traefik.web_port, manifests.HOST, self.options.rps)
                    self._proxy_traffic.start()
                    via = f" through Traefik on 127.0.0.1:{self._traefik.web_port}"
                else:
                    sandbox.dataplane.start_traffic(manifests.HOST, rps=self.options.rps)
                    via = ""
                report.stage(f"controller started; sending {self.options.rps:g} req/s to {manifests.HOST}{via}; "
                             "waiting for the canary to be Initialized")
                await self._wait(lambda: self._phase() == "Initialized", "the canary to be Initialized")
                what = f"{manifests.NEXT_VERSION} with a 30% error rate" if self.options.faulty \
                    else manifests.NEXT_VERSION
                report.stage(f"rolling out {manifests.APP} {what}")
                current = await kube.get(DEPLOYMENTS, manifests.APP, manifests.NAMESPACE)
                await kube.replace(DEPLOYMENTS, manifests.next_revision(current, self.options.faulty))
                await self._wait(lambda: self._phase() in TERMINAL and self._saw_progress,
                                 "the release to finish")
                phase = self._phase()
                with contextlib.suppress(DemoError):
                    await self._wait(lambda: self._weights is not None and self._weights[1] == 0,
                                     "all traffic back on the primary", SETTLE_TIMEOUT)
                primary = await kube.get(DEPLOYMENTS, f"{manifests.APP}-primary", manifests.NAMESPACE)
                outcome = self._outcome(phase, primary)
                # The last frame's numbers belong to the final split, however short its window is yet.
                report.traffic(self._measured(sandbox))
                report.stage(f"release {outcome.phase}")
                if self.options.keep:
                    # Controller and traffic keep running: a further `kubectl set image` is a new release to watch.
                    await self._keep(sandbox, outcome)
                    if self._release_number > 1:
                        primary = await kube.get(DEPLOYMENTS, f"{manifests.APP}-primary", manifests.NAMESPACE)
                        outcome = replace(outcome, latest=self._latest(primary))
                if self._proxy_traffic is not None:
                    await self._proxy_traffic.stop()
                await sandbox.dataplane.stop_traffic()
        return outcome

    async def _install(self, kube: KubeClient, metrics_url: str) -> None:
        try:
            source = await asyncio.to_thread(manifests.gateway_crds, self.options.gateway_crds)
        except (FileNotFoundError, ValueError) as exc:
            raise DemoError(str(exc)) from None
        if not source.official:
            self.reporter.line("note: official Gateway API CRDs not found (--gateway-crds DIR or "
                               f"${manifests.GATEWAY_CRDS_ENV}); serving Gateway API kinds without schema validation")
        for crd in [*manifests.flagger_crds(), *source.documents]:
            await kube.create(CRDS, crd)
        for namespace in manifests.namespaces():
            await kube.create(NAMESPACES, namespace)
        if self._traefik is not None:
            await kube.create(GATEWAYCLASSES, traefik.gateway_class())
            await kube.create(GATEWAYS, traefik.gateway(self._traefik.web_port))
            template = traefik.metric_template(metrics_url)
            assert self._sandbox is not None
            await self._traefik.start(self._sandbox.kubeconfig_path)
        else:
            await kube.create(GATEWAYCLASSES, manifests.gateway_class())
            await kube.create(GATEWAYS, manifests.gateway())
            template = manifests.metric_template(metrics_url)
        await kube.create(DEPLOYMENTS, manifests.deployment())
        await kube.create(METRICTEMPLATES, template)
        canary = manifests.canary(metrics_url, self.options.timing)
        if self._traefik is not None:
            # The builtin checks then read Traefik's metrics, whatever the controller's --metrics-flavour.
            canary["metadata"].setdefault("annotations", {})[FLAVOUR_ANNOTATION] = "traefik"
        await kube.create(CANARIES, canary)

    async def _keep(self, sandbox: Sandbox, outcome: Outcome) -> None:
        """Serve until Ctrl-C; that interrupt is the expected way out, so the release's outcome still counts."""
        kubectl = f"KUBECONFIG={sandbox.kubeconfig_path} kubectl -n {manifests.NAMESPACE}"
        self.reporter.line(f"{outcome.summary}\nsandbox, controller and traffic still running at {sandbox.url}; try:\n"
                           f"  {kubectl} get canaries\n"
                           f"  curl -s {self.reporter.state.telemetry_url}/metrics | grep ^flagger_canary\n"
                           f"  {kubectl} set image deployment/{manifests.APP} podinfod={manifests.image('6.0.3')}\n"
                           "press Ctrl-C to stop")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    # observation

    def _phase(self) -> str:
        return str(self._canary_status.get("phase") or "")

    async def _wait(self, predicate: Callable[[], bool], what: str, within: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (within if within is not None else self.options.timeout)
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DemoError(f"timed out waiting for {what} (phase {self._phase() or 'none'})")
            self._changed.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a Ctrl-C that lands as the event fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    def _on_metrics(self, canary: Canary, step: StepContext, results: list[MetricResult]) -> None:
        if canary.metadata.name == manifests.APP and canary.metadata.namespace == manifests.NAMESPACE:
            self.reporter.metrics(step.canary_weight, results)

    async def _watch(self, sandbox: Sandbox) -> None:
        async for change in sandbox.cluster.changes():
            obj = change.object
            meta = obj.get("metadata") or {}
            if meta.get("namespace") != manifests.NAMESPACE or change.type == "DELETED":
                continue
            if change.plural == "canaries" and meta.get("name") == manifests.APP:
                self._canary_status = obj.get("status") or {}
                phase = self._phase()
                if phase in ("Progressing", "Promoting", "Finalising"):
                    self._saw_progress = True
                    self._release_progressed = True
                self.reporter.phase(phase, int(self._canary_status.get("failedChecks") or 0))
                self._release_ended(phase)
            elif change.plural == "deployments" and meta.get("name") == manifests.APP:
                self._revision(obj)
            elif change.plural == "httproutes" and meta.get("name") == manifests.APP:
                self._route(obj)
            elif change.plural == "events" and (obj.get("involvedObject") or {}).get("kind") == "Canary":
                message = str(obj.get("message") or "")
                # The engine's text for `flaggerpy abort` (canary/manual.py).
                self._aborted = self._aborted or "manual abort requested" in message
                self.reporter.event(str(obj.get("type") or ""), str(obj.get("reason") or ""), message)
            self._changed.set()

    def _revision(self, deployment: dict[str, Any]) -> None:
        """A new image on the app's Deployment starts a new release block (superseding one still running)."""
        image = _image(deployment)
        if not image or image == self._image:
            return
        if self._release_number and not self._release_outcome:
            self.reporter.outcome(f"superseded by {_version(image)} before it finished")
        self._image = image
        self._release_number = self._release_number + 1 if self._image_seen else 0
        self._image_seen = True
        self._release_started = self.reporter.state.elapsed
        self._release_progressed = False
        self._release_outcome = ""
        self._aborted = False
        self.reporter.release(image)
        if self._release_number > 1:
            self.reporter.stage(f"release {self._release_number}: rolling out {image}")

    def _release_ended(self, phase: str) -> None:
        if self._release_outcome:
            return
        if self._release_number == 0 and phase == "Initialized":
            self._release_outcome = "Initialized: the primary serves all traffic"
        elif self._release_number and self._release_progressed and phase == "Succeeded":
            self._release_outcome = "Succeeded: promoted"
        elif self._release_number and self._release_progressed and phase == "Failed":
            self._release_outcome = "Failed: aborted and rolled back" if self._aborted else "Failed: rolled back"
        else:
            return
        self.reporter.outcome(self._release_outcome)

    def _latest(self, primary: dict[str, Any]) -> str:
        """What became of the latest release (one the user started with ``kubectl set image`` under --keep)."""
        version = _version(_image(primary))
        name = f"release {self._release_number} ({self._image})"
        if not self._release_outcome:
            weight = self._weights[1] if self._weights else 0
            return f"{name} still {self._phase() or 'waiting'} at canary {weight}% when stopped; primary runs {version}"
        elapsed = self.reporter.state.elapsed - self._release_started
        share = self._weights[0] if self._weights else 0
        return (f"{name} {self._release_outcome} after {elapsed:.1f}s: primary runs {version}, {share}% of traffic "
                "on the primary")

    def _route(self, route: dict[str, Any]) -> None:
        rules = (route.get("spec") or {}).get("rules") or []
        if not rules:
            return
        weights = {ref.get("name"): int(ref.get("weight", 1)) for ref in rules[-1].get("backendRefs") or []}
        primary = weights.get(f"{manifests.APP}-primary", 0)
        canary = weights.get(f"{manifests.APP}-canary", 0)
        if (primary, canary) != self._weights and self._sandbox is not None:
            # Requests routed by the earlier weights must not be averaged into what the bar shows now.
            self._window = (asyncio.get_running_loop().time(), self._counters(self._sandbox))
        self._weights = (primary, canary)
        self.reporter.weights(primary, canary)

    def _counters(self, sandbox: Sandbox) -> dict[str, tuple[int, int]]:
        if self._traefik is not None and sandbox.backends is not None:
            return _pod_answers(sandbox)
        counters = {}
        for name, service in BACKENDS.items():
            stats = sandbox.dataplane.stats(manifests.NAMESPACE, service)
            counters[name] = (stats.requests, stats.errors)
        return counters

    def _measured(self, sandbox: Sandbox) -> dict[str, Traffic]:
        """Requests per second and error share per backend since the route's current weights took effect."""
        now = asyncio.get_running_loop().time()
        start, before = self._window or (now, {name: (0, 0) for name in BACKENDS})
        window = max(now - start, 1e-3)
        measured = {}
        for name, (requests, errors) in self._counters(sandbox).items():
            routed, failed = requests - before[name][0], errors - before[name][1]
            measured[name] = Traffic(routed / window, 100.0 * failed / routed if routed else 0.0, window)
        return measured

    async def _measure(self, sandbox: Sandbox) -> None:
        """The measured traffic over the current weights' window, reported every second."""
        while True:
            await asyncio.sleep(1.0)
            self.reporter.traffic(self._measured(sandbox))

    def _outcome(self, phase: str, primary: dict[str, Any]) -> Outcome:
        version = _version(_image(primary))
        primary_weight = self._weights[0] if self._weights else 0
        elapsed = self.reporter.state.elapsed
        if phase == "Succeeded":
            detail = (f"promoted: primary runs {version}, {primary_weight}% of traffic on the primary")
        else:
            detail = (f"rolled back: primary still runs {version}, {primary_weight}% of traffic on the primary")
        verdict = "as expected" if phase == self.expected else f"but {self.expected} was expected"
        summary = f"release of {manifests.APP} {manifests.NEXT_VERSION} {phase} {verdict} after {elapsed:.1f}s: " \
                  f"{detail}"
        healthy = primary_weight == 100 and (
            (phase == "Succeeded" and version == manifests.NEXT_VERSION)
            or (phase == "Failed" and version == manifests.FIRST_VERSION)
        )
        if not healthy:
            summary += " (unexpected end state)"
        return Outcome(phase, self.expected, healthy, summary)


def _image(deployment: dict[str, Any]) -> str:
    """The image of the Deployment's (the app's only) container; empty when it has none."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    return str((containers or [{}])[0].get("image") or "")


def _version(image: str) -> str:
    """The tag of ``image`` (``6.0.2`` of ``ghcr.io/stefanprodan/podinfo:6.0.2``)."""
    return image.rpartition(":")[2]


def _pod_answers(sandbox: Sandbox) -> dict[str, tuple[int, int]]:
    """(requests, 5xx) answered by the primary's and the canary's pods (behind Traefik, the pods count)."""
    assert sandbox.backends is not None
    counters = {name: [0, 0] for name in BACKENDS}
    for (namespace, pod, _, code, _), count in sandbox.backends.counts.items():
        if namespace != manifests.NAMESPACE:
            continue
        name = "primary" if pod.startswith(f"{manifests.APP}-primary-") else "canary"
        if not pod.startswith(f"{manifests.APP}-"):
            continue
        counters[name][0] += count
        counters[name][1] += count if code >= 500 else 0
    return {name: (pair[0], pair[1]) for name, pair in counters.items()}
