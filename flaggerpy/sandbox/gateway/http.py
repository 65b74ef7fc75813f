"""The data plane's control endpoints, mounted on the sandbox server under /sandbox/dataplane.

- ``GET  /sandbox/dataplane/stats``            counters as JSON
- ``GET  /sandbox/dataplane/metrics``          counters in Prometheus text format (for a real Prometheus)
- ``POST /sandbox/dataplane/request``          send one synthetic request, get the response described
- ``GET  /sandbox/dataplane/traffic``          running generators
- ``POST /sandbox/dataplane/traffic``          start a generator (body: TrafficSpec fields), 201 {"id": ...}
- ``DELETE /sandbox/dataplane/traffic[/{id}]`` stop one generator, or all
- ``POST /sandbox/dataplane/listen``           {"gateway": "ns/name"} → {"port": ...}: real HTTP for a Gateway
- ``DELETE /sandbox/dataplane/stats``          reset all counters
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from flaggerpy.sandbox.gateway.match import Request
from flaggerpy.sandbox.gateway.settings import DataPlaneSettings
from flaggerpy.sandbox.gateway.stats import DataPlaneStats
from flaggerpy.sandbox.gateway.table import Response
from flaggerpy.sandbox.gateway.traffic import FieldProblem, TrafficError, TrafficSpec

PREFIX = "/sandbox/dataplane"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ControlledPlane(Protocol):
    """What the control endpoints need of a data plane (``GatewayDataPlane`` is one; it mounts these routes)."""

    settings: DataPlaneSettings
    counters: DataPlaneStats

    def handle(self, request: Request, gateway: tuple[str, str] | None = None) -> Response: ...

    def traffic(self) -> list[dict]: ...

    def start_traffic_spec(self, spec: TrafficSpec) -> str: ...

    async def stop_traffic(self, traffic_id: str | None = None) -> int: ...

    async def listen(self, gateway_namespace: str, gateway_name: str) -> int: ...


def _invalid(problems: list[FieldProblem]) -> web.Response:
    return web.json_response(
        {
            "message": "; ".join(str(problem) for problem in problems),
            "errors": [{"field": problem.field, "problem": problem.problem} for problem in problems],
        },
        status=422,
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrafficError([FieldProblem("body", f"not valid JSON: {exc}")]) from exc


def control_routes(plane: ControlledPlane) -> list[web.RouteDef]:
    """RouteDefs serving ``plane``'s counters, synthetic requests, traffic generators and listeners."""

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(plane.counters.as_json())

    async def reset(_: web.Request) -> web.Response:
        plane.counters.reset()
        return web.json_response({"reset": True})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=plane.counters.prometheus_text().encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
        )

    async def one_request(request: web.Request) -> web.Response:
        try:
            spec = TrafficSpec.from_json(await _json_body(request), plane.settings.max_rps)
        except TrafficError as exc:
            return _invalid(exc.problems)
        response = plane.handle(Request(spec.host, spec.path, spec.method, spec.headers, spec.query), spec.gateway)
        return web.json_response(
            {
                "status": response.status,
                "latencyMs": response.latency_ms,
                "backend": f"{response.backend.namespace}/{response.backend.name}" if response.backend else None,
                "route": str(response.route) if response.route else None,
                "rule": response.rule,
                "workload": response.workload,
                "headers": [list(pair) for pair in response.headers],
                "mirroredTo": [f"{ref.namespace}/{ref.name}" for ref in response.mirrored_to],
            }
        )

    async def list_traffic(_: web.Request) -> web.Response:
        return web.json_response({"items": plane.traffic()})

    async def start_traffic(request: web.Request) -> web.Response:
        try:
            spec = TrafficSpec.from_json(await _json_body(request), plane.settings.max_rps)
            traffic_id = plane.start_traffic_spec(spec)
        except TrafficError as exc:
            return _invalid(exc.problems)
        return web.json_response({"id": traffic_id}, status=201)

    async def stop_traffic(request: web.Request) -> web.Response:
        traffic_id = request.match_info.get("id")
        stopped = await plane.stop_traffic(traffic_id)
        if traffic_id is not None and stopped == 0:
            return web.json_response({"message": f"traffic {traffic_id!r} not found"}, status=404)
        return web.json_response({"stopped": stopped})

    async def listen(request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
        except TrafficError as exc:
            return _invalid(exc.problems)
        gateway = body.get("gateway") if isinstance(body, dict) else None
        if not isinstance(gateway, str) or gateway.count("/") != 1 or "" in gateway.split("/"):
            return _invalid([FieldProblem("gateway", "required, '<namespace>/<name>'")])
        namespace, name = gateway.split("/")
        return web.json_response({"gateway": gateway, "port": await plane.listen(namespace, name)})

    return [
        web.get(f"{PREFIX}/stats", stats),
        web.delete(f"{PREFIX}/stats", reset),
        web.get(f"{PREFIX}/metrics", metrics),
        web.post(f"{PREFIX}/request", one_request),
        web.get(f"{PREFIX}/traffic", list_traffic),
        web.post(f"{PREFIX}/traffic", start_traffic),
        web.delete(f"{PREFIX}/traffic", stop_traffic),
        web.delete(f"{PREFIX}/traffic/{{id}}", stop_traffic),
        web.post(f"{PREFIX}/listen", listen),
    ]
