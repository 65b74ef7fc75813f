"""A small keep-alive HTTP/1.1 client for the API server's request/response calls (watches stay on aiohttp).

Why not aiohttp for these too: a GET through an aiohttp session costs about 2.5 times the CPU of writing the request
and parsing the answer on a pooled asyncio stream, and the controller sends a few requests on every step. This
client does only what API calls need: fixed-length and chunked bodies, keep-alive with an idle limit, TLS with the
configuration's context, a connect timeout and a read timeout (restarted by each chunk of a chunked answer). It does
not compress, follow redirects, keep cookies or speak to proxies (a proxied configuration keeps using aiohttp).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LIMIT = 2**21  # a chunk-size line or the header block never comes close; mirrors aiohttp's read buffer


class TransportError(Exception):
    """The exchange failed below HTTP (refused, reset, closed early, unparsable); ``cause`` names the reason."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Answer:
    """A complete response: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class Http11Client:
    """Requests to one server (``base_url``: scheme, host, port and an optional path prefix) over pooled
    connections; at most ``limit`` at once."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None = None,
        limit: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        idle_timeout: float = 15.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"API server URL {base_url!r}: need http:// or https:// and a host")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl_context if parts.scheme == "https" else None
        self._server_hostname = server_hostname if self._ssl is not None else None
        self._prefix = parts.path.rstrip("/")
        self._authority = parts.netloc.rpartition("@")[2]
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle_timeout = idle_timeout
        self.closed = False

    async def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Send one request (``target``: path and query) and read the whole answer.

        Raises :class:`TransportError` when the exchange fails, connecting or a read takes too long included; the
        connection is then dropped, never reused.
        """
        if self.closed:
            raise TransportError("ClientClosed", "the API client is closed")
        head = [f"{method} {self._prefix}{target} HTTP/1.1", f"Host: {self._authority}"]
        head.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None or method in _BODY_METHODS:
            head.append(f"Content-Length: {len(body) if body is not None else 0}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if body:
            message += body
        async with self._slots:
            connection = self._pooled() or await self._connect()
            try:
                answer, reusable = await self._exchange(connection, method, message, self._read_timeout)
            except BaseException:
                connection.close()
                raise
            if reusable and not self.closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    async def close(self) -> None:
        """Close every pooled connection; later requests fail."""
        self.closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            # A connection idle for long may have been closed by the server: aiohttp drops it after 15 s too.
            if now - connection.idle_since < self._idle_timeout and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, server_hostname=self._server_hostname, limit=_LIMIT
                )
        except OSError as exc:  # TimeoutError included
            raise TransportError(type(exc).__name__, f"cannot connect to {self._authority}: {_why(exc)}") from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, method: str, message: bytes, read_timeout: float
    ) -> tuple[Answer, bool]:
        reader = connection.reader
        try:
            connection.writer.write(message)
            async with asyncio.timeout(read_timeout) as deadline:
                status, version, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                while 100 <= status < 200:  # interim answers (none expected): skip to the real one
                    deadline.reschedule(asyncio.get_running_loop().time() + read_timeout)
                    status, version, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                reusable = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
                if method == "HEAD" or status in (204, 304):
                    body = b""
                elif "chunked" in headers.get("transfer-encoding", "").lower():
                    body = await _read_chunked(reader, deadline, read_timeout)
                elif "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                else:
                    body = await reader.read()  # delimited by the server closing the connection
                    reusable = False
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise TransportError(type(exc).__name__, f"{method} to {self._authority} failed: {_why(exc)}") from exc
        return Answer(status, headers, body), reusable


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _parse_head(block: bytes) -> tuple[int, str, dict[str, str]]:
    lines = block.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, version, headers


async def _read_chunked(reader: asyncio.StreamReader, deadline: asyncio.Timeout, read_timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, if any
                pass
            return b"".join(parts)
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        parts.append(chunk[:-2])
        deadline.reschedule(loop.time() + read_timeout)
