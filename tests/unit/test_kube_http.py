"""The kube client's own HTTP/1.1 transport: framing, keep-alive, servers that hang up, TLS, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import NotFound, Unavailable
from flaggerpy.kube.http import Http11Client, TransportError
from flaggerpy.kube.resources import CONFIGMAPS
from flaggerpy.kube.settings import ClientSettings
from tests.unit.test_kube_fakeserver import cm
from tests.unit.tlsfakes import self_signed, server_context

FAST = ClientSettings(retry_attempts=3, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.0, read_timeout=0.5)


@asynccontextmanager
async def raw_server(answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                     ) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running ``answer`` per connection; yields its URL and the connections accepted so far."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await answer(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", accepted


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_chunked_answers_with_trailers_and_keep_alive_reuse_one_connection() -> None:
    doc = json.dumps(cm("x", 7)).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            await read_request(reader)
            half = len(doc) // 2
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"%x;ext=1\r\n" % half + doc[:half] + b"\r\n"
                         + b"%x\r\n" % (len(doc) - half) + doc[half:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
            await writer.drain()

    async with raw_server(answer) as (url, accepted), kube_at(url) as kube:
        for _ in range(3):
            assert (await kube.get(CONFIGMAPS, "x", "ns"))["metadata"]["resourceVersion"] == "7"
        assert len(accepted) == 1


async def test_connection_close_and_eof_delimited_bodies_open_a_new_connection() -> None:
    doc = json.dumps(cm("x", 1)).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if len(accepted) == 1:
            writer.write(ok(doc, b"Connection: close\r\n"))
        else:
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + doc)  # no length: the body ends with the connection

    async with raw_server(answer) as (url, accepted), kube_at(url) as kube:
        await kube.get(CONFIGMAPS, "x", "ns")
        await kube.get(CONFIGMAPS, "x", "ns")
        await kube.get(CONFIGMAPS, "x", "ns")
        assert len(accepted) == 3


async def test_a_server_hanging_up_is_unavailable_and_retried_on_a_fresh_connection() -> None:
    doc = json.dumps(cm("x", 1)).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if len(accepted) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"partial")  # then hang up
            return
        writer.write(ok(doc))

    seen: list[int] = []
    async with raw_server(answer) as (url, accepted), kube_at(url) as kube:
        kube.add_observer(lambda verb, resource, status, seconds: seen.append(status))
        assert (await kube.get(CONFIGMAPS, "x", "ns"))["metadata"]["name"] == "x"
    assert seen == [0, 200]


async def test_a_silent_server_times_out_and_errors_keep_their_status() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if len(accepted) <= FAST.retry_attempts:
            await asyncio.sleep(5)  # never answers within read_timeout
            return
        body = json.dumps({"kind": "Status", "code": 404, "reason": "NotFound", "message": "gone"}).encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    async with raw_server(answer) as (url, accepted), kube_at(url) as kube:
        with pytest.raises(Unavailable, match="timed out"):
            await kube.get(CONFIGMAPS, "x", "ns")
        with pytest.raises(NotFound, match="gone"):
            await kube.get(CONFIGMAPS, "x", "ns")


async def test_unreachable_and_garbage_servers_are_transport_errors() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    async with raw_server(answer) as (url, _):
        client = Http11Client(url, ssl_context=None)
        with pytest.raises(TransportError, match=r"not an HTTP/1\.x status line"):
            await client.request("GET", "/api", {}, None)
        await client.close()
        with pytest.raises(TransportError, match="closed"):
            await client.request("GET", "/api", {}, None)
    refused = Http11Client(url, ssl_context=None, connect_timeout=1.0)
    with pytest.raises(TransportError, match="cannot connect"):
        await refused.request("GET", "/api", {}, None)


async def test_https_with_the_kubeconfig_ca_and_a_path_prefix(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response(cm("x", 3))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert_file, key_file))
    await site.start()
    port = runner.addresses[0][1]
    try:
        cfg = Configuration(host=f"https://127.0.0.1:{port}/k8s/clusters/c1")
        cfg.ssl_ca_cert = str(cert_file)
        async with KubeClient(api_client=ApiClient(cfg), settings=FAST) as kube:
            assert (await kube.get(CONFIGMAPS, "x", "ns"))["metadata"]["resourceVersion"] == "3"
        assert seen == ["/k8s/clusters/c1/api/v1/namespaces/ns/configmaps/x"]

        untrusted = Configuration(host=f"https://127.0.0.1:{port}")
        async with KubeClient(api_client=ApiClient(untrusted), settings=replace(FAST, retry_attempts=1)) as kube:
            with pytest.raises(Unavailable, match=r"(?i)certificate.verify.failed"):
                await kube.get(CONFIGMAPS, "x", "ns")
    finally:
        await runner.cleanup()


@asynccontextmanager
async def kube_at(url: str) -> AsyncIterator[KubeClient]:
    async with KubeClient(api_client=ApiClient(Configuration(host=url)), settings=FAST) as kube:
        yield kube
