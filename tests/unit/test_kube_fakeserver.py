"""A scripted HTTP server for kube-layer unit tests: each test says exactly what every request gets."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.settings import ClientSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Script:
    """Queued handlers, consumed one per request; ``requests`` records (method, path, query) of each."""

    handlers: deque[Handler] = field(default_factory=deque)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def then(self, *handlers: Handler) -> Script:
        """Append handlers for the next requests, in order."""
        self.handlers.extend(handlers)
        return self

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if not self.handlers:
            return status(500, "InternalError", "script exhausted")
        return await self.handlers.popleft()(request)


def status(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> web.Response:
    """A Kubernetes Status answer."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes:
        body["details"] = {"causes": causes}
    return web.json_response(body, status=code)


def respond(
    code: int,
    reason: str = "",
    message: str = "",
    headers: dict[str, str] | None = None,
    causes: list[dict[str, str]] | None = None,
) -> Handler:
    """A handler answering one Status (or a JSON object when ``code`` is 2xx)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = status(code, reason, message, causes)
        response.headers.update(headers or {})
        return response

    return handler


def json_ok(doc: dict[str, Any]) -> Handler:
    """A handler answering ``doc`` with 200."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(doc)

    return handler


def cm(name: str, rv: int, namespace: str = "ns") -> dict[str, Any]:
    """A minimal ConfigMap."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)},
    }


def listing(rv: int, *items: dict[str, Any]) -> Handler:
    """A list answer with collection resourceVersion ``rv``."""
    return json_ok(
        {
            "kind": "ConfigMapList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(rv)},
            "items": [dict(i) for i in items],
        }
    )


def stream(*events: dict[str, Any]) -> Handler:
    """A watch answer sending ``events`` then ending the stream."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for event in events:
            await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    return handler


@asynccontextmanager
async def fake_cluster(settings: ClientSettings | None = None) -> AsyncIterator[tuple[Script, KubeClient]]:
    """Serve a Script on 127.0.0.1 and yield it with a KubeClient pointed at it."""
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kube = KubeClient(api_client=ApiClient(Configuration(host=f"http://127.0.0.1:{port}")), settings=settings)
    try:
        async with kube:
            yield script, kube
    finally:
        await runner.cleanup()
