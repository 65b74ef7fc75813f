"""``flaggerpy demo --gateway traefik``: the real Traefik as the demo's Gateway.

Traefik's Kubernetes Gateway provider runs against the sandbox, whose pods get loopback IPs and real HTTP
listeners (``Sandbox(backends=True)``); the demo's traffic is real HTTP sent through Traefik's entry point, the
analysis reads Traefik's own metrics through a real Prometheus, and the bar shows the pods' answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from flaggerpy.demo import manifests
from flaggerpy.demo.errors import DemoError
from flaggerpy.demo.processes import stop_process
from flaggerpy.sandbox.controllers.pods import PodSettings

CONTROLLER = "traefik.io/gateway-controller"
CLASS = "traefik"
INSTALL_HINT = "pip install 'flaggerpy[traefik]'"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Pods that go keep serving this long: Traefik stops sending to a pod only once it has seen its EndpointSlice change.
TERMINATION_DELAY = 2.0
SANDBOX_OPTIONS: Mapping[str, Any] = {"backends": True,
                                      "pod_settings": PodSettings(termination_delay=TERMINATION_DELAY)}
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)


def find_traefik() -> str:
    """The ``traefik`` executable; DemoError saying how to install it when there is none."""
    binary = shutil.which("traefik")
    if binary is None:
        raise DemoError(f"--gateway traefik: no 'traefik' executable on PATH (install it with {INSTALL_HINT})")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_class() -> dict[str, Any]:
    """The GatewayClass Traefik's Gateway provider implements."""
    return {"apiVersion": f"{manifests.GATEWAY_GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": CLASS},
            "spec": {"controllerName": CONTROLLER}}


def gateway(port: int) -> dict[str, Any]:
    """The demo's Gateway on Traefik: Traefik attaches a listener to the entry point with the same port."""
    gw = manifests.gateway()
    gw["spec"]["gatewayClassName"] = CLASS
    gw["spec"]["listeners"][0]["port"] = port
    return gw


def metric_template(metrics_server: str) -> dict[str, Any]:
    """The percentage of 5xx answers from the canary's backend, from Traefik's service metrics."""
    selector = 'service=~".+-svc-{{ namespace }}-{{ service }}-canary-[0-9]+@kubernetesgateway"'
    template = manifests.metric_template(metrics_server)
    template["spec"]["query"] = (
        f'100 * (sum(rate(traefik_service_requests_total{{{selector}, code=~"5.."}}[{{{{ interval }}}}])) '
        f"or vector(0))\n/\nsum(rate(traefik_service_requests_total{{{selector}}}[{{{{ interval }}}}]))"
    )
    return template


class TraefikProcess:
    """The traefik binary with its Gateway provider on the sandbox; ports are chosen up front so Prometheus can be
    told where to scrape before Traefik runs."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.web_port = _free_port()
        self.admin_port = _free_port()
        self._process: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def metrics_target(self) -> str:
        """host:port of Traefik's /metrics (and API, ping)."""
        return f"127.0.0.1:{self.admin_port}"

    async def start(self, kubeconfig: Path) -> None:
        """Start Traefik and wait until it answers pings."""
        self._dir = tempfile.TemporaryDirectory(prefix="flaggerpy-demo-traefik-")
        log_path = Path(self._dir.name) / "traefik.log"
        with log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                f"--entrypoints.web.address=127.0.0.1:{self.web_port}",
                f"--entrypoints.traefik.address={self.metrics_target}",
                "--ping=true", "--metrics.prometheus=true", "--providers.kubernetesgateway=true",
                # Each weight step reaches traffic at once, not after Traefik's default 2 s throttle.
                "--providers.providersThrottleDuration=100ms", "--log.level=ERROR",
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                start_new_session=True,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            while loop.time() < deadline and self._process.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"http://{self.metrics_target}/ping") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-1000:].strip()
        raise DemoError(f"traefik did not start on {self.metrics_target}: {tail or 'no output'}")

    async def stop(self) -> None:
        """Terminate Traefik (kill it if it lingers)."""
        process, self._process = self._process, None
        await stop_process(process, STOP_TIMEOUT)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class ProxyTraffic:
    """Real HTTP GETs to ``host`` through a proxy on 127.0.0.1:``port``, ``rps`` per second, until stopped."""

    def __init__(self, port: int, host: str, rps: float) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.host = host
        self.rps = rps
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sending."""
        self._task = asyncio.create_task(self._run(), name="demo-traefik-traffic")

    async def stop(self) -> None:
        """Stop sending (requests in flight are dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=_REQUEST_TIMEOUT) as session:
            try:
                sent, began = 0, loop.time()
                while True:
                    due = int((loop.time() - began) * self.rps) - sent
                    for _ in range(max(0, due)):
                        task = asyncio.create_task(self._one(session))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    sent += max(0, due)
                    await asyncio.sleep(0.01)
            finally:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(self.url, headers={"Host": self.host}) as resp:
                await resp.read()
