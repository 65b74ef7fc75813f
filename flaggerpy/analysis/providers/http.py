"""One HTTP exchange with a metrics backend: timeout, retry of transient failures, errors mapped to types."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from tenacity import RetryCallState
from yarl import URL

from flaggerpy.analysis.providers.base import ProviderSpec, deadline, ssl_option
from flaggerpy.analysis.providers.errors import (
    AuthError,
    HttpError,
    MalformedResponse,
    ProviderConfigError,
    ProviderTimeout,
    Unreachable,
)
from flaggerpy.log import get_logger
from flaggerpy.outbound import OutboundRefused, redact_url, retry_policy

# Statuses a load balancer or a restarting backend answers for a moment; anything else is the backend's verdict.
_TRANSIENT_STATUSES = frozenset({502, 503, 504})
_RETRIES = 2
_DETAIL_LIMIT = 300
# No metric answer is anywhere near this; a bigger one is a misconfigured address, not data to buffer.
MAX_BODY = 16 * 1024 * 1024
_XML_DETAIL = re.compile(r"<(?:Code|Message)>([^<]*)</(?:Code|Message)>")

log = get_logger(__name__)

BodyReader = Callable[[aiohttp.ClientResponse], Awaitable[bytes]]


class _Transient(Exception):
    """Internal: a failure worth one more attempt; carries the error to raise when attempts run out."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Response:
    """A successful (< 400) answer."""

    status: int
    body: bytes

    def json(self, provider: str) -> Any:
        """The body as JSON, or MalformedResponse."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise MalformedResponse(provider, f"response is not JSON ({described(self.body)})") from exc


def described(body: bytes) -> str:
    """What a successful answer that made no sense looked like, without its content.

    A 2xx body is never echoed: an address pointed at a credentials endpoint would otherwise copy the
    credentials into the check's error, and from there into Events and logs.
    """
    text = body.lstrip()[:1]
    kind = {b"{": "a JSON object", b"[": "a JSON list", b"<": "markup"}.get(text, "text" if text else "empty")
    return f"got {kind} of {len(body)} bytes, not shown"


def snippet(body: bytes) -> str:
    """A short, single-line excerpt of an error (>= 400) body for error messages."""
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "..."


def error_detail(body: bytes) -> str:
    """The human part of an error body: the usual JSON ``error``/``message`` fields or AWS's XML Code/Message."""
    if body.lstrip().startswith(b"<"):
        found = [m.group(1) for m in _XML_DETAIL.finditer(body.decode("utf-8", errors="replace"))]
        if found:
            return snippet(": ".join(found).encode())
    try:
        data = json.loads(body)
    except ValueError:
        return snippet(body)
    if isinstance(data, dict):
        for key in ("error", "message", "errors", "errorMessage"):
            if data.get(key):
                value = data[key]
                if isinstance(value, dict):
                    value = value.get("message", value)
                return snippet(str(value).encode())
    return snippet(body)


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    provider: str,
    time_limit: float,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | CIMultiDict[str] | None = None,
    data: bytes | str | Mapping[str, str] | None = None,
    ssl: bool = True,
    read_body: BodyReader | None = None,
) -> Response:
    """Send one request; retry connection failures and 502/503/504 with backoff, each try within ``time_limit``.

    ``read_body`` reads a successful answer (e.g. a stream up to its end marker); by default the whole body.
    Raises AuthError (401/403), HttpError (other >= 400), Unreachable or ProviderTimeout.
    """
    client_timeout = aiohttp.ClientTimeout(total=time_limit)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info("metrics backend failed, retrying", provider=provider, attempt=state.attempt_number, error=str(error))

    retrying = retry_policy(_RETRIES, backoff_min=0.1, backoff_max=1.0, on=_Transient, before_sleep=before_sleep)
    try:
        async for attempt in retrying:
            with attempt:
                return await _once(
                    session, method, url, provider, client_timeout, params, headers, data, ssl, read_body
                )
    except _Transient as exc:
        raise exc.error from None
    raise AssertionError("unreachable: tenacity either returns or raises")


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    provider: ProviderSpec,
    *,
    name: str,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | CIMultiDict[str] | None = None,
    data: bytes | str | Mapping[str, str] | None = None,
    read_body: BodyReader | None = None,
) -> Response:
    """A query's one API call: :func:`request` with the template's TLS setting, retries and all within ``timeout``."""
    async with deadline(timeout, name):
        return await request(
            session,
            method,
            url,
            provider=name,
            time_limit=timeout,
            params=params,
            headers=headers,
            data=data,
            ssl=ssl_option(provider),
            read_body=read_body,
        )


async def _once(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    provider: str,
    client_timeout: aiohttp.ClientTimeout,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | CIMultiDict[str] | None,
    data: bytes | str | Mapping[str, str] | None,
    ssl: bool,
    read_body: BodyReader | None,
) -> Response:
    try:
        async with session.request(
            method,
            url,
            params=params,
            headers=headers,
            data=data,
            ssl=ssl,
            timeout=client_timeout,
            allow_redirects=False,
        ) as resp:
            status = resp.status
            body = await read_body(resp) if read_body is not None and status < 400 else await _read(resp, provider)
    except TimeoutError as exc:
        raise ProviderTimeout(provider, f"no answer within {client_timeout.total:g}s") from exc
    except OutboundRefused as exc:
        raise ProviderConfigError(provider, f"{redact_url(url)}: {exc}") from None
    except aiohttp.ClientConnectionError as exc:
        raise _Transient(Unreachable(provider, f"cannot reach {_origin(url)}: {exc.__class__.__name__}")) from exc
    except aiohttp.ClientError as exc:
        raise Unreachable(provider, f"request to {_origin(url)} failed: {exc}") from exc
    if 300 <= status < 400:
        # A redirect could lead anywhere (the metadata server included): it is never followed.
        raise HttpError(provider, status, f"{redact_url(url)} answered with a redirect, which is not followed")
    if status in (401, 403):
        raise AuthError(provider, status, f"credentials rejected: {error_detail(body)}")
    if status in _TRANSIENT_STATUSES:
        raise _Transient(HttpError(provider, status, error_detail(body)))
    if status >= 400:
        raise HttpError(provider, status, error_detail(body))
    return Response(status, body)


async def _read(resp: aiohttp.ClientResponse, provider: str) -> bytes:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise MalformedResponse(provider, f"answer is larger than {MAX_BODY // (1024 * 1024)} MiB")
    return bytes(body)


def _origin(url: str) -> str:
    """scheme://host:port only: paths and query strings may carry tenant ids or queries we should not echo."""
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.explicit_port else "")
