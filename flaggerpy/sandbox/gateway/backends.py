"""Real HTTP backends for pods: a listener at ``podIP:containerPort`` for every serving pod of a cluster.

``PodBackends`` lists and watches Pods of any cluster (the sandbox, or a real kube-apiserver whose kwok pods get
loopback IPs) through its own small client (``kubeclient``), and serves each pod that is Ready (and keeps serving
it through a graceful termination, as the app would) on every TCP container port. Answers are shaped by the pod's
annotations, which are its template's: ``sandbox.flaggerpy.io/error-rate`` (share answered 500) and
``sandbox.flaggerpy.io/latency`` (mean response time, jittered log-normally). Every answer names the pod and its
revision (the ``pod-template-hash`` or ``controller-revision-hash`` label) in the ``X-Pod`` and ``X-Revision``
headers and in a small JSON body. Pods whose IP is not a loopback address are never served: nothing listens
outside loopback.

Answers are counted per pod, revision and code, with whether the pod was ready at that moment, at ``stats()``
(JSON) and ``prometheus_text()`` (``sandbox_pod_requests_total``), mounted on the sandbox at
``/sandbox/backends/stats`` and ``/sandbox/backends/metrics``, or served by ``flaggerpy sandbox backends``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from flaggerpy.sandbox.gateway.kubeclient import ApiEndpoint, KubeReader
from flaggerpy.sandbox.gateway.workloads import annotated_behaviour

log = structlog.get_logger(logger_name="flaggerpy.sandbox.backends")

POD_HEADER = "X-Pod"
REVISION_HEADER = "X-Revision"
REVISION_LABELS = ("pod-template-hash", "controller-revision-hash")
PREFIX = "/sandbox/backends"


@dataclass(frozen=True)
class BackendSettings:
    """How pod backends answer and which pods they serve."""

    namespace: str | None = None
    """Serve pods of this namespace only (default: all namespaces)."""
    default_latency_ms: float = 1.0
    """Mean latency of a pod without a latency annotation."""
    latency_jitter: float = 0.25
    """Log-normal sigma of latencies around their mean (0: every answer takes exactly the mean)."""
    seed: int | None = None
    drain_timeout: float = 10.0
    """Seconds a pod that is gone may take to finish the requests it is answering (a slow pod's last answers)."""


@dataclass
class PodState:
    """What a listener needs to know of its pod; replaced in place when the pod changes."""

    namespace: str
    name: str
    uid: str
    ip: str
    ports: tuple[int, ...]
    revision: str
    ready: bool
    error_rate: float
    latency_ms: float
    problems: tuple[str, ...] = ()


def _ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_state(pod: Mapping[str, Any], default_latency_ms: float) -> PodState | None:
    """The state to serve ``pod`` with, or None when it has no loopback IP or no TCP container port."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not isinstance(ip, str):
        return None
    try:
        if not ipaddress.ip_address(ip).is_loopback:
            return None
    except ValueError:
        return None
    ports = sorted({int(port["containerPort"])
                    for container in (pod.get("spec") or {}).get("containers") or [] if isinstance(container, dict)
                    for port in container.get("ports") or []
                    if isinstance(port, dict) and isinstance(port.get("containerPort"), int)
                    and port.get("protocol", "TCP") == "TCP" and 0 < port["containerPort"] < 65536})
    if not ports:
        return None
    labels = meta.get("labels") or {}
    revision = next((str(labels[key]) for key in REVISION_LABELS if key in labels), "")
    error_rate, latency, problems = annotated_behaviour(meta.get("annotations") or {}, default_latency_ms,
                                                        "metadata.annotations")
    return PodState(str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", "")), ip,
                    tuple(ports), revision, _ready(pod) and not meta.get("deletionTimestamp"), error_rate, latency,
                    problems)


@dataclass
class _Listener:
    state: PodState
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class PodBackends:
    """Watches Pods through ``KubeReader`` and runs a real HTTP listener per serving pod."""

    name = "pod-backends"

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings or BackendSettings()
        self.rng = random.Random(self.settings.seed)
        self.counts: Counter[tuple[str, str, str, int, bool]] = Counter()
        self._listeners: dict[str, _Listener] = {}
        self._warned: set[str] = set()
        self._changed = asyncio.Event()
        # One low-level aiohttp server for every listener: the socket a request came in on names its pod.
        self._by_ip: dict[str, _Listener] = {}
        self._server = web.Server(self._handle, access_log=None)
        self._draining: set[asyncio.Task[None]] = set()

    def _path(self) -> str:
        namespace = self.settings.namespace
        return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"

    async def run(self, endpoint: ApiEndpoint) -> None:
        """Serve the pods of the cluster at ``endpoint`` until cancelled; then close every listener."""
        reader = KubeReader(endpoint)
        try:
            async for kind, obj in reader.follow(self._path()):
                if kind == "SYNC":
                    await self._resync(obj["items"])
                else:
                    await self._apply(kind, obj)
                self._changed.set()
        finally:
            await reader.close()
            await self.close()

    async def wait_changed(self) -> None:
        """Return after the next batch of pod changes has been applied (for tests and tools)."""
        self._changed.clear()
        await self._changed.wait()

    def serving(self) -> dict[str, PodState]:
        """The pods being served, by ``namespace/name``."""
        return {key: listener.state for key, listener in self._listeners.items()}

    async def _resync(self, pods: list[dict[str, Any]]) -> None:
        seen = set()
        for pod in pods:
            meta = pod.get("metadata") or {}
            seen.add(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
            await self._apply("MODIFIED", pod)
        for key in [key for key in self._listeners if key not in seen]:
            await self._stop(key)

    async def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        state = None if kind == "DELETED" else pod_state(pod, self.settings.default_latency_ms)
        current = self._listeners.get(key)
        if state is None:
            self._warn_outside(key, pod, kind)
            await self._stop(key)
            return
        for problem in state.problems:
            self._warn(f"{key}: {problem}")
        if current is not None and (current.state.uid, current.state.ip, current.state.ports) == (
                state.uid, state.ip, state.ports):
            # Readiness and behaviour change in place; a terminating pod keeps its listener until it is gone.
            current.state = state
            return
        await self._stop(key)
        if not state.ready:
            return  # a pod that never was ready serves nothing yet
        listener = _Listener(state)
        loop = asyncio.get_running_loop()
        for port in state.ports:
            try:
                server = await loop.create_server(self._server, state.ip, port)
            except OSError as exc:
                self._warn(f"{key}: cannot listen on {state.ip}:{port}: {exc.strerror or exc}")
                continue
            listener.servers.append(server)
        if listener.servers:
            self._listeners[key] = listener
            self._by_ip[state.ip] = listener

    def _warn_outside(self, key: str, pod: dict[str, Any], kind: str) -> None:
        ip = (pod.get("status") or {}).get("podIP")
        if kind != "DELETED" and isinstance(ip, str):
            with contextlib.suppress(ValueError):
                if not ipaddress.ip_address(ip).is_loopback:
                    self._warn(f"{key}: pod IP {ip} is not a loopback address; not served")

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("pod backend", problem=message)

    async def _stop(self, key: str) -> None:
        listener = self._listeners.pop(key, None)
        if listener is None:
            return
        for server in listener.servers:
            server.close()
        # The rest in the background: a slow pod's last answers must not hold up the other pods' listeners.
        task = asyncio.create_task(self._drain(listener), name=f"pod-backend-drain-{key}")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, listener: _Listener) -> None:
        """Like an app shutting down: no new connections, the answers under way are finished, then kept-alive
        connections (which outlive a closed listening socket) go too."""
        if listener.inflight:
            listener.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.drain_timeout):
                    await listener.idle.wait()
        if self._by_ip.get(listener.state.ip) is listener:
            del self._by_ip[listener.state.ip]
        for handler in list(self._server.connections):
            transport = handler.transport
            sockname = transport.get_extra_info("sockname") if transport is not None else None
            if sockname and sockname[0] == listener.state.ip:
                handler.force_close()
        for server in listener.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def close(self) -> None:
        """Stop every listener (answers under way get ``drain_timeout`` to finish)."""
        for key in list(self._listeners):
            await self._stop(key)
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        await self._server.shutdown(1.0)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        listener = self._by_ip.get(sockname[0]) if sockname else None
        if listener is None:
            return web.Response(status=503, text="pod is gone")
        state = listener.state
        status, delay = self.answer(state)
        if delay > 0:
            listener.inflight += 1
            try:
                await asyncio.sleep(delay)
            finally:
                listener.inflight -= 1
                if not listener.inflight:
                    listener.idle.set()
        return web.json_response(
            {"pod": state.name, "namespace": state.namespace, "revision": state.revision, "status": status},
            status=status, headers={POD_HEADER: state.name, REVISION_HEADER: state.revision})

    def answer(self, state: PodState) -> tuple[int, float]:
        """(status, seconds to wait) for one request to the pod ``state`` describes; counted."""
        status = 500 if state.error_rate > 0 and self.rng.random() < state.error_rate else 200
        delay = 0.0
        if state.latency_ms > 0:
            jitter = self.settings.latency_jitter
            mean = state.latency_ms
            delay = (self.rng.lognormvariate(math.log(mean) - jitter * jitter / 2, jitter) if jitter > 0
                     else mean) / 1000.0
        self.counts[(state.namespace, state.name, state.revision, status, state.ready)] += 1
        return status, delay

    def stats(self) -> dict[str, Any]:
        """Answers per pod: ``{"pods": [{namespace, pod, revision, code, ready, count}], "serving": [...]}``."""
        return {
            "pods": [{"namespace": ns, "pod": pod, "revision": rev, "code": code, "ready": ready, "count": n}
                     for (ns, pod, rev, code, ready), n in sorted(self.counts.items())],
            "serving": [{"namespace": s.namespace, "pod": s.name, "ip": s.ip, "ports": list(s.ports),
                         "revision": s.revision, "ready": s.ready} for s in self.serving().values()],
        }

    def prometheus_text(self) -> str:
        """The answer counts in Prometheus text format."""
        lines = ["# HELP sandbox_pod_requests_total Requests answered by pod backends.",
                 "# TYPE sandbox_pod_requests_total counter"]
        for (ns, pod, rev, code, ready), n in sorted(self.counts.items()):
            lines.append(f'sandbox_pod_requests_total{{namespace="{ns}",pod="{pod}",revision="{rev}",'
                         f'code="{code}",ready="{str(ready).lower()}"}} {n}')
        return "\n".join(lines) + "\n"

    def routes(self) -> list[web.RouteDef]:
        """``GET /sandbox/backends/stats`` (JSON), ``GET .../metrics`` (Prometheus), ``DELETE .../stats``."""

        async def stats(_: web.Request) -> web.Response:
            return web.json_response(self.stats())

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=self.prometheus_text(), content_type="text/plain")

        async def reset(_: web.Request) -> web.Response:
            self.counts.clear()
            return web.json_response({"reset": True})

        return [web.get(f"{PREFIX}/stats", stats), web.get(f"{PREFIX}/metrics", metrics),
                web.delete(f"{PREFIX}/stats", reset)]
