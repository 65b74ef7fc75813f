"""A local HTTP server for the tests of outbound POSTs (alerts, webhooks): it records every POST per path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

R = TypeVar("R", bound="PostRecorder")


class PostRecorder:
    """Records the JSON body and headers of each POST per path; :meth:`answer` (override it) says what to reply."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {}
        self.request_headers: dict[str, list[CIMultiDictProxy[str]]] = {}
        self._server: TestServer | None = None

    @property
    def server(self) -> TestServer:
        """The running server (see :func:`serving`)."""
        assert self._server is not None, "the recorder is not serving"
        return self._server

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return str(self.server.make_url(path))

    def header(self, name: str) -> dict[str, list[str]]:
        """Per path, the value of header ``name`` in each POST received there ("" where it was absent)."""
        return {
            path: [headers.get(name, "") for headers in received] for path, received in self.request_headers.items()
        }

    async def answer(self, request: web.Request, body: Any) -> web.StreamResponse:
        """The reply to a POST that was just recorded."""
        return web.Response(text="ok")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.setdefault(request.path, []).append(body)
        self.request_headers.setdefault(request.path, []).append(request.headers)
        return await self.answer(request, body)


@asynccontextmanager
async def serving(recorder: R) -> AsyncIterator[R]:
    """``recorder`` listening on a free loopback port for POSTs to any path; stopped afterwards."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder._handle)
    server = TestServer(app)
    await server.start_server()
    recorder._server = server
    try:
        yield recorder
    finally:
        await server.close()
