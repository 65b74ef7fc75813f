"""Real HTTP for the simulated Gateway: a loopback listener per Gateway, proxying to loopback backends.

``hey``/``curl`` talk to the listener; it matches and splits each request with the data plane's logic, forwards
it to an in-process backend server that answers as the chosen workload would (its error rate and latency), and
counts the measured upstream time, so a real Prometheus scraping /sandbox/dataplane/metrics sees what it would see
on an Envoy-based Gateway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import aiohttp
import structlog
from aiohttp import web

from flaggerpy.sandbox.gateway.match import Request
from flaggerpy.sandbox.gateway.table import Decision, RouteKey, ServiceRef
from flaggerpy.sandbox.gateway.workloads import NO_ENDPOINTS, Behaviour, Workload

log = structlog.get_logger(logger_name="flaggerpy.sandbox.dataplane")

# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business and are not forwarded.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)


class _Plane(Protocol):
    """What the proxy needs from the data plane."""

    def decide(self, request: Request, gateway: tuple[str, str] | None = None) -> Decision: ...

    def workload_of(self, service: ServiceRef) -> Workload | None: ...

    def record_local(self, decision: Decision) -> None: ...

    def record(self, service: ServiceRef, route: RouteKey | None, code: int, latency_ms: float) -> None: ...

    def sample(self, behaviour: Behaviour) -> tuple[int, float]: ...


class _Backends:
    """The loopback server standing in for every workload's pods: ``/<namespace>/<service>/<path>``."""

    def __init__(self, plane: _Plane, host: str) -> None:
        self._plane = plane
        self._host = host
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{namespace}/{service}/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self.port = _bound_port(self._runner)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        service = ServiceRef(request.match_info["namespace"], request.match_info["service"])
        workload = self._plane.workload_of(service)
        behaviour = workload.behaviour if workload else NO_ENDPOINTS
        code, latency_ms = self._plane.sample(behaviour)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000.0)
        body = {"service": f"{service.namespace}/{service.name}", "workload": workload.name if workload else None}
        return web.json_response(body, status=code)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("listener has no bound TCP address")


class GatewayListener:
    """One Gateway's real-HTTP entry point on loopback, with its own backends server and client session."""

    def __init__(self, plane: _Plane, gateway: tuple[str, str], host: str = "127.0.0.1",
                 upstream_timeout: float = 30.0, max_inflight_mirrors: int = 256) -> None:
        self._plane = plane
        self._gateway = gateway
        self._host = host
        self._timeout = aiohttp.ClientTimeout(total=upstream_timeout)
        self._max_mirrors = max_inflight_mirrors
        self._backends = _Backends(plane, host)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._mirrors: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Bind the backends and the Gateway listener on ephemeral loopback ports."""
        await self._backends.start()
        self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, 0).start()
        self.port = _bound_port(self._runner)
        log.info("gateway listening", gateway=f"{self._gateway[0]}/{self._gateway[1]}", port=self.port)

    async def stop(self) -> None:
        """Close the listener, cancel in-flight mirrors, close the session and backends."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._mirrors):
            task.cancel()
        await asyncio.gather(*self._mirrors, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._backends.stop()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        synthetic = Request(
            request.host, request.path, request.method, dict(request.headers), dict(request.query)
        )
        decision = self._plane.decide(synthetic, self._gateway)
        route = decision.rule.route if decision.rule else None
        body = await request.read()
        for mirror in decision.mirrors:
            self._mirror(mirror, route, request, body)
        if decision.status is not None or decision.backend is None:
            self._plane.record_local(decision)
            status = decision.status or 500
            response = web.Response(status=status, text=_reason(status))
        else:
            code, payload, content_type = await self._forward(decision.backend.ref, route, request, body)
            response = web.Response(status=code, body=payload, content_type=content_type)
        for name, value in decision.headers:
            response.headers.add(name, value)
        return response

    async def _forward(self, service: ServiceRef, route: RouteKey | None, request: web.Request,
                       body: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        url = f"http://{self._host}:{self._backends.port}/{service.namespace}/{service.name}{request.path}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        started = time.perf_counter()
        try:
            async with self._session.request(
                request.method, url, params=request.query, headers=headers, data=body or None
            ) as upstream:
                payload = await upstream.read()
                code, content_type = upstream.status, upstream.content_type
        except TimeoutError:
            code, payload, content_type = 504, b"upstream request timeout", "text/plain"
        except aiohttp.ClientError:
            code, payload, content_type = 503, b"upstream connect error", "text/plain"
        self._plane.record(service, route, code, (time.perf_counter() - started) * 1000.0)
        return code, payload, content_type

    async def _shadow(self, service: ServiceRef, route: RouteKey | None, request: web.Request,
                      body: bytes) -> None:
        await self._forward(service, route, request, body)

    def _mirror(self, service: ServiceRef, route: RouteKey | None, request: web.Request, body: bytes) -> None:
        # Mirrors are fire-and-forget like Envoy's shadows; past the bound they are dropped, not queued.
        if len(self._mirrors) >= self._max_mirrors:
            return
        task = asyncio.get_running_loop().create_task(self._shadow(service, route, request, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)


def _reason(status: int) -> str:
    return {404: "no route matched", 500: "no valid backend", 503: "no healthy upstream"}.get(status, "")
