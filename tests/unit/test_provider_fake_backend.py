"""A local HTTP server standing in for a metrics backend, shared by the provider tests.

It records every request exactly as received (method, path, query, headers, body) so tests can assert the
request each real API expects, and answers with whatever the test scripted.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy, MultiDictProxy

Handler = Callable[["Recorded"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Recorded:
    """One request as the backend saw it."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    raw: web.Request = field(repr=False, compare=False)


class FakeBackend:
    """An aiohttp server on 127.0.0.1 with a scripted handler."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._handler: Handler = _not_scripted
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.url = ""

    def respond(self, handler: Handler) -> None:
        """Answer every following request with ``handler``."""
        self._handler = handler

    def json(self, payload: object, status: int = 200) -> None:
        """Answer every following request with a JSON body."""

        async def handler(_: Recorded) -> web.StreamResponse:
            return web.json_response(payload, status=status)

        self.respond(handler)

    def text(self, body: str, status: int = 200, content_type: str = "text/plain") -> None:
        """Answer every following request with a text body."""

        async def handler(_: Recorded) -> web.StreamResponse:
            return web.Response(text=body, status=status, content_type=content_type)

        self.respond(handler)

    def hang(self) -> None:
        """Never answer (until the client gives up)."""

        async def handler(_: Recorded) -> web.StreamResponse:
            # Released at close() so the server's graceful shutdown does not wait for this request.
            await self._closing.wait()
            return web.Response(status=503)

        self.respond(handler)

    @property
    def last(self) -> Recorded:
        """The most recent request."""
        assert self.requests, "the backend received no request"
        return self.requests[-1]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(request.method, request.path, request.query, request.headers, body, request)
        self.requests.append(recorded)
        return await self._handler(recorded)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        """Listen on a free loopback port (HTTPS with ``ssl_context``); returns the base URL."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()


async def _not_scripted(recorded: Recorded) -> web.StreamResponse:
    return web.Response(status=599, text=f"test did not script an answer for {recorded.path}")


@asynccontextmanager
async def running_backend(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[FakeBackend]:
    """A started FakeBackend, closed afterwards."""
    backend = FakeBackend()
    await backend.start(ssl_context)
    try:
        yield backend
    finally:
        await backend.close()


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session like the checker's."""
    async with aiohttp.ClientSession() as session:
        yield session
