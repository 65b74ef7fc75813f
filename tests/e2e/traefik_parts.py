"""Traefik as the Gateway of an end-to-end release, and what it tells about the traffic it forwarded.

- :class:`TraefikGateway` (a ``GatewayParts``): a GatewayClass naming ``traefik.io/gateway-controller``, a Gateway
  whose HTTP listener port is Traefik's ``web`` entry point, and the real ``traefik`` binary running its Kubernetes
  Gateway provider against the sandbox (whose pods have loopback IPs and real listeners), with its Prometheus
  metrics and API on a second entry point.
- :class:`TraefikObserver`: polls Traefik's API for the weights it routes each canary with (the weighted service
  of the canary's HTTPRoute) and the canary servers it sends to; at every change of weights it reads the request
  counts of Traefik's own ``/metrics`` and of the pods' answers, so the traffic split is measured twice, by the
  proxy and by the backends, per set of weights Traefik actually used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.controllers.pods import PodSettings
from tests.e2e.prometheus_fixture import ScrapeTarget
from tests.e2e.release_harness import Subprocess, Window
from tests.manifests import GATEWAY_NAME, GATEWAY_NAMESPACE, NAMESPACE, gateway
from tests.ports import free_port

TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# Finer than Traefik's default (0.1, 0.3, 1.2, 5 s), so a p99 bound in milliseconds means something.
BUCKETS = "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5"
_SAMPLE = re.compile(r'^traefik_service_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.MULTILINE)
_SERVICE = re.compile(r'service="(?P<service>[^"]*)"')
_CODE = re.compile(r'code="(?P<code>[^"]*)"')


def traefik_binary() -> str | None:
    """The ``traefik`` executable (``pip install 'flaggerpy[traefik]'`` installs one), or None."""
    return shutil.which("traefik")


def require_traefik() -> None:
    """Skip without Traefik on a developer's machine; in CI (``CI`` set) a missing Traefik is a failure."""
    if traefik_binary() is None:
        message = "traefik is not installed (pip install 'flaggerpy[traefik]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def canary_service(namespace: str, name: str) -> str:
    """A regex for Traefik's name of the canary backend of canary ``name``'s HTTPRoute (any rule, any index)."""
    return f".+-svc-{namespace}-{name}-canary-[0-9]+@kubernetesgateway"


def child_role(service: str, namespace: str, name: str) -> str | None:
    """"primary", "canary" or None for one of Traefik's backend service names."""
    for role in ("primary", "canary"):
        if re.search(f"-svc-{re.escape(namespace)}-{re.escape(name)}-{role}-[0-9]+(@kubernetesgateway)?$", service):
            return role
    return None


class TraefikGateway:
    """Traefik 3 on the sandbox, as a ``GatewayParts`` for ``real_parts``."""

    # A pod that goes keeps serving for 5 s, as an app's graceful shutdown would: Traefik stops sending it
    # requests only once it has seen the EndpointSlice change, which takes longer than the sandbox's default 0.2 s
    # on a loaded machine (a pod removed before that is a refused connection, a 502).
    sandbox_options: dict[str, Any] = {"backends": True, "pod_settings": PodSettings(termination_delay=5.0)}

    def __init__(self) -> None:
        self.process: Subprocess | None = None
        self.web_port = 0
        self.admin_port = 0

    @property
    def admin_url(self) -> str:
        """Traefik's API, ping and metrics entry point."""
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self, sb: Sandbox, workdir: Path) -> tuple[int, list[ScrapeTarget]]:
        """GatewayClass, Gateway on the ``web`` entry point's port, then Traefik; wait until it answers pings."""
        binary = traefik_binary()
        assert binary is not None, "require_traefik() first"
        self.web_port, self.admin_port = free_port(), free_port()
        await sb.cluster.create(GATEWAY_GROUP, "gatewayclasses", {
            "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": "traefik"},
            "spec": {"controllerName": TRAEFIK_CONTROLLER}})
        gw = gateway()
        gw["spec"]["gatewayClassName"] = "traefik"
        gw["spec"]["listeners"][0]["port"] = self.web_port
        await sb.cluster.create(GATEWAY_GROUP, "gateways", gw)
        self.process = Subprocess("traefik", [
            binary,
            f"--entrypoints.web.address=127.0.0.1:{self.web_port}",
            f"--entrypoints.traefik.address=127.0.0.1:{self.admin_port}",
            "--api.insecure=true", "--ping=true",
            "--metrics.prometheus=true", f"--metrics.prometheus.buckets={BUCKETS}",
            "--providers.kubernetesgateway=true",
            # Apply a new configuration at once (default: at most one per 2 s), as the weights move every step.
            "--providers.providersThrottleDuration=50ms",
            "--log.level=INFO",
        ], workdir / "traefik.log", env={"KUBECONFIG": str(sb.kubeconfig_path)})
        await self.process.start()
        await self.process.wait_http(f"{self.admin_url}/ping")
        await self._wait_programmed(sb)
        return self.web_port, [ScrapeTarget(f"127.0.0.1:{self.admin_port}", "/metrics", job="traefik")]

    async def _wait_programmed(self, sb: Sandbox) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            gw = sb.cluster.get(GATEWAY_GROUP, "gateways", GATEWAY_NAMESPACE, GATEWAY_NAME) or {}
            conditions = {c.get("type"): c.get("status") for c in (gw.get("status") or {}).get("conditions") or []}
            if conditions.get("Programmed") == "True":
                return
            await asyncio.sleep(0.1)
        assert self.process is not None
        raise RuntimeError(f"Traefik did not program the Gateway:\n{self.process.tail()}")

    async def stop(self) -> None:
        """Stop Traefik."""
        if self.process is not None:
            await self.process.stop()

    def samples_query(self, namespace: str, name: str, window: str) -> str:
        """Traefik's per-service request counter for the canary backend."""
        return (f'sum(count_over_time(traefik_service_requests_total{{service=~"{canary_service(namespace, name)}"}}'
                f'[{window}]))')


@dataclass
class TraefikHistory:
    """What Traefik did for one canary: windows by Traefik's counters and by the pods' answers, per weights."""

    name: str
    by_traefik: list[Window] = field(default_factory=list)
    by_pods: list[Window] = field(default_factory=list)
    # Observations of a canary server in Traefik's configuration whose pod was neither ready nor terminating.
    unready_servers: int = 0
    # Codes of Traefik's answers for the canary backend (a request to a pod that does not listen yet is a 502).
    canary_codes: dict[str, int] = field(default_factory=dict)

    @property
    def canary_weights(self) -> list[int]:
        """The canary weights Traefik routed with, in order."""
        return [w.canary_weight for w in self.by_traefik]


class TraefikObserver:
    """Polls Traefik's API every ``interval`` seconds (see the module docstring)."""

    def __init__(self, sb: Sandbox, traefik: TraefikGateway, names: list[str], interval: float = 0.05) -> None:
        self._sb = sb
        self._traefik = traefik
        self.histories = {name: TraefikHistory(name) for name in names}
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Begin polling."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._task = asyncio.create_task(self._run(), name="e2e-traefik-observer")

    async def stop(self) -> None:
        """Stop polling and close every open window with the final counts."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        traefik_counts = await self._traefik_counts()
        for history in self.histories.values():
            for windows, counts in ((history.by_traefik, traefik_counts.get(history.name, (0, 0))),
                                    (history.by_pods, self.pod_counts(history.name))):
                if windows and windows[-1].end is None:
                    windows[-1].end = counts
        if self._session is not None:
            await self._session.close()

    def pod_counts(self, name: str, ready: bool | None = None) -> tuple[int, int]:
        """(primary, canary) answers of canary ``name``'s pods so far (only those while ready/not ready when
        ``ready`` says so)."""
        backends = self._sb.backends
        assert backends is not None
        primary = canary = 0
        for (namespace, pod, _, _, was_ready), count in backends.counts.items():
            if namespace != NAMESPACE or (ready is not None and was_ready != ready):
                continue
            if pod.startswith(f"{name}-primary-"):
                primary += count
            elif pod.startswith(f"{name}-"):
                canary += count
        return primary, canary

    async def _traefik_counts(self) -> dict[str, tuple[int, int]]:
        assert self._session is not None
        async with self._session.get(f"{self._traefik.admin_url}/metrics") as resp:
            text = await resp.text()
        counts: dict[str, list[int]] = {name: [0, 0] for name in self.histories}
        codes: dict[str, dict[str, int]] = {name: {} for name in self.histories}
        for sample in _SAMPLE.finditer(text):
            labels = sample.group("labels")
            service = _SERVICE.search(labels)
            if service is None:
                continue
            for name in self.histories:
                role = child_role(service.group("service"), NAMESPACE, name)
                if role is not None:
                    value = int(float(sample.group("value")))
                    counts[name][role == "canary"] += value
                    code = _CODE.search(labels)
                    if role == "canary" and code is not None:
                        codes[name][code.group("code")] = codes[name].get(code.group("code"), 0) + value
        for name, history in self.histories.items():
            history.canary_codes = codes[name]
        return {name: (pair[0], pair[1]) for name, pair in counts.items()}

    async def _run(self) -> None:
        assert self._session is not None
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with self._session.get(f"{self._traefik.admin_url}/api/http/services") as resp:
                    services = await resp.json()
                await self._observe(services)
            await asyncio.sleep(self._interval)

    async def _observe(self, services: list[dict[str, Any]]) -> None:
        changed: list[tuple[TraefikHistory, dict[str, int]]] = []
        ready_ips = self._ready_canary_ips()
        for history in self.histories.values():
            weights: dict[str, int] = {}
            for service in services:
                for child in (service.get("weighted") or {}).get("services") or []:
                    role = child_role(str(child.get("name", "")), NAMESPACE, history.name)
                    if role is not None:
                        weights[f"{history.name}-{role}"] = int(child.get("weight", 1))
                role = child_role(str(service.get("name", "")), NAMESPACE, history.name)
                if role == "canary":
                    for server in (service.get("loadBalancer") or {}).get("servers") or []:
                        host = str(server.get("url", "")).split("//")[-1].rsplit(":", 1)[0]
                        if host not in ready_ips.get(history.name, set()):
                            history.unready_servers += 1
            if len(weights) == 2 and (not history.by_traefik or history.by_traefik[-1].weights != weights):
                changed.append((history, weights))
        if not changed:
            return
        traefik_counts = await self._traefik_counts()
        for history, weights in changed:
            canary_weight = weights[f"{history.name}-canary"]
            for windows, counts in ((history.by_traefik, traefik_counts[history.name]),
                                    (history.by_pods, self.pod_counts(history.name))):
                if windows and windows[-1].end is None:
                    windows[-1].end = counts
                windows.append(Window(dict(weights), canary_weight, counts))

    def _ready_canary_ips(self) -> dict[str, set[str]]:
        ips: dict[str, set[str]] = {name: set() for name in self.histories}
        for pod in self._sb.cluster.store.items(("", "pods"), NAMESPACE):
            status = pod.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if not ready:  # terminating pods stay Ready while they drain: Traefik may still send them requests
                continue
            app = (pod["metadata"].get("labels") or {}).get("app", "")
            if app in ips:
                ips[app].add(str(status.get("podIP")))
        return ips

