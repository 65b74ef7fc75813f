"""``Sandbox``: the embedded cluster as an async context manager, plus the in-sandbox controller protocol."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.authz import Authorizer
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.faults import Counters, Faults
from flaggerpy.sandbox.apiserver.server import ApiServer, ServerSettings, build_app
from flaggerpy.sandbox.apiserver.store import Store
from flaggerpy.sandbox.controllers.endpoints import EndpointsController
from flaggerpy.sandbox.controllers.keda import KedaOperator
from flaggerpy.sandbox.controllers.keda import install as install_keda
from flaggerpy.sandbox.controllers.pods import PodController, PodSettings
from flaggerpy.sandbox.controllers.workloads import WorkloadSettings, WorkloadSimulator
from flaggerpy.sandbox.gateway.backends import PodBackends
from flaggerpy.sandbox.gateway.kubeclient import ApiEndpoint
from flaggerpy.sandbox.kubeconfig import write_kubeconfig
from flaggerpy.sandbox.promql.server import PromQLServer

log = get_logger("flaggerpy.sandbox")
DATAPLANE_MODULE = "flaggerpy.sandbox.gateway.dataplane"


@runtime_checkable
class SandboxController(Protocol):
    """A controller running inside the sandbox (like kube-controller-manager or a Gateway implementation).

    It may also define ``routes(self) -> list[aiohttp.web.RouteDef]``; the sandbox mounts those on its server.
    """

    name: str

    async def run(self, cluster: Cluster) -> None:
        """Run until cancelled."""
        ...


def _dataplane_available() -> bool:
    return importlib.util.find_spec(DATAPLANE_MODULE) is not None


class Sandbox:
    """An in-process Kubernetes API server on 127.0.0.1 with a kubeconfig pointing at it.

    ``async with Sandbox() as sb:`` gives ``sb.url``, ``sb.kubeconfig_path``, ``sb.cluster`` (in-process access),
    ``sb.faults`` and ``sb.counters``. ``dataplane=None`` enables the Gateway data plane when its module exists;
    with it, ``sb.promql`` answers Prometheus queries over its counters at ``<url>/sandbox/prometheus``.
    ``cel_rules=False`` skips CRD CEL rules (about 1 ms per HTTPRoute write; benchmarks may turn them off).
    ``history_size`` is how many watch events at least are kept for replay (older versions get 410 Gone);
    ``ready_delay`` is how long a new Deployment/DaemonSet revision takes to become ready. ``keda=True`` installs
    KEDA: the ScaledObject CRD and an operator acting on ScaledObjects (see ``keda``); without it the sandbox is a
    cluster without KEDA. ``pods=True`` gives the simulated workloads Pods with loopback IPs (see
    ``controllers.pods``) and keeps EndpointSlices and Endpoints for Services (see ``controllers.endpoints``), which a
    real Gateway such as Traefik needs; off by default, since most tests need neither and they cost writes.
    ``backends=True`` (implies ``pods``) serves every ready pod with a real HTTP listener at podIP:containerPort
    (see ``gateway.backends``); ``sb.backends`` counts their answers. The data plane leaves alone the Gateways whose
    GatewayClass names ``traefik.io/gateway-controller`` or one of ``other_gateway_controllers``: another
    implementation running against the sandbox programs them and writes their status.
    """

    def __init__(
        self,
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        controllers: Sequence[SandboxController] = (),
        *,
        host: str = "127.0.0.1",
        dataplane: bool | None = None,
        workloads: bool = True,
        ready_delay: float = 0.2,
        history_size: int = 10_000,
        bookmark_interval: float = 5.0,
        cel_rules: bool = True,
        keda: bool = False,
        pods: bool = False,
        backends: bool = False,
        other_gateway_controllers: Sequence[str] = (),
        pod_settings: PodSettings | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cluster = Cluster(store=Store(history_size=history_size), cel_rules=cel_rules)
        self.faults = Faults()
        self.counters = Counters()
        # Tokens registered here are users checked against the cluster's RBAC objects (see ``apiserver.authz``).
        self.authz = Authorizer(self.cluster.store, self.cluster.registry)
        self.settings = settings or ServerSettings(bookmark_interval=bookmark_interval)
        self.controllers: list[SandboxController] = list(controllers)
        if workloads:
            self.workloads: WorkloadSimulator | None = WorkloadSimulator(WorkloadSettings(ready_delay=ready_delay))
            self.controllers.insert(0, self.workloads)
        else:
            self.workloads = None
        self.pods: PodController | None = None
        self.backends = PodBackends() if backends else None
        if pods or backends:
            self.pods = PodController(pod_settings)
            self.controllers.extend([self.pods, EndpointsController()])
        self.keda = KedaOperator() if keda else None
        if self.keda is not None:
            self.controllers.append(self.keda)
        self.dataplane: Any = None
        if dataplane or (dataplane is None and _dataplane_available()):
            module = importlib.import_module(DATAPLANE_MODULE)
            plane_settings = module.DataPlaneSettings()
            plane_settings = dataclasses.replace(plane_settings, other_controllers=(
                plane_settings.other_controllers | frozenset(other_gateway_controllers)))
            self.dataplane = module.GatewayDataPlane(plane_settings)
            self.controllers.append(self.dataplane)
        # A Prometheus query API over the data plane's counters, for machines without Prometheus.
        self.promql: PromQLServer | None = None
        if self.dataplane is not None:
            self.promql = PromQLServer(self.dataplane.counters.prometheus_text)
            self.controllers.append(self.promql)
        self._requested_kubeconfig = Path(kubeconfig_path) if kubeconfig_path else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.server: ApiServer | None = None
        self.url = ""
        self.kubeconfig_path = Path()

    async def __aenter__(self) -> Sandbox:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen, write the kubeconfig, start controllers."""
        self.cluster.create_object(self.cluster.resource("", "namespaces"), "v1", "",
                                   {"metadata": {"name": "default"}})
        for name in ("kube-system", "kube-public"):
            self.cluster.create_object(self.cluster.resource("", "namespaces"), "v1", "", {"metadata": {"name": name}})
        if self.keda is not None:
            install_keda(self.cluster)
        extra: list[web.RouteDef] = self.backends.routes() if self.backends is not None else []
        for controller in self.controllers:
            routes = getattr(controller, "routes", None)
            if callable(routes):
                extra.extend(routes())
        app, self.server = build_app(self.cluster, self.faults, self.counters, self.settings, extra, self.authz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{self.host}:{self.port}"
        if self._requested_kubeconfig is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="flaggerpy-sandbox-")
            path = Path(self._tempdir.name) / "kubeconfig"
        else:
            path = self._requested_kubeconfig
        self.kubeconfig_path = write_kubeconfig(path, self.url)
        for controller in self.controllers:
            self._tasks.append(asyncio.create_task(self._run_controller(controller), name=f"sandbox-{controller.name}"))
        self._tasks.append(asyncio.create_task(self._drop_watches_periodically(), name="sandbox-watch-dropper"))
        if self.backends is not None:
            # Over HTTP, as against any other cluster: the backends read pods the way a kubelet-side agent would.
            self._tasks.append(asyncio.create_task(self._run_backends(self.backends), name="sandbox-pod-backends"))
        log.info("sandbox started", url=self.url, kubeconfig=str(self.kubeconfig_path))

    def user_kubeconfig(self, path: Path, token: str, name: str, namespace: str = "default",
                        groups: Sequence[str] = ()) -> Path:
        """Register ``token`` as user ``name`` (authorised by the cluster's RBAC objects) and write a kubeconfig
        for it to ``path``."""
        self.authz.add_user(token, name, groups)
        return write_kubeconfig(path, self.url, namespace, token)

    async def stop(self) -> None:
        """Stop controllers and the server; remove a temporary kubeconfig."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        close = getattr(self.dataplane, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                await close()
        if self.server is not None:
            self.server.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def _run_controller(self, controller: SandboxController) -> None:
        try:
            await controller.run(self.cluster)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox controller crashed", controller=controller.name)

    async def _run_backends(self, backends: PodBackends) -> None:
        try:
            await backends.run(ApiEndpoint(self.url, False))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox pod backends crashed")

    async def _drop_watches_periodically(self) -> None:
        """Honour ``faults.drop_watches_every``; re-read each round so tests can change it at any time."""
        while True:
            every = self.faults.drop_watches_every
            await asyncio.sleep(every if every else 0.5)
            if every and self.faults.drop_watches_every:
                self.faults.drop_watches()
