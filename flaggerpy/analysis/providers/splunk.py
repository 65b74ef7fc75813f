"""Splunk Observability (SignalFx): a SignalFlow program run by ``POST /v2/signalflow/execute``.

Flagger runs the same computation over SignalFlow's WebSocket; the HTTP transport of that API answers the same
messages as Server-Sent Events, which needs no WebSocket framing here. Secret key ``sf_token_key`` (sent as
``X-SF-Token``). The address may be the API (``https://api.<realm>.signalfx.com``) or stream host; like Flagger we
talk to the stream host. The range is the last ten intervals; the last value of the single output series wins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    finite,
    number,
    provider_name,
    require_secret_key,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, MultipleSeries, NoData, ProviderConfigError
from flaggerpy.analysis.providers.http import MAX_BODY, call

_RANGE_INTERVALS = 10


def stream_address(address: str) -> str:
    """The SignalFlow stream endpoint for a configured API or stream address (ws(s) schemes become http(s))."""
    if address.startswith(("ws://", "wss://")):
        address = "http" + address[2:]
    url = URL(address)
    host = url.host or ""
    if host.startswith("api."):
        url = url.with_host("stream." + host[len("api.") :])
    return str(url).rstrip("/")


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Execute ``rendered`` as a SignalFlow program over the last ten intervals and return its last value."""
    name = provider_name(provider, "splunk")
    raw = (provider.address or "").strip()
    if not raw:
        raise ProviderConfigError(name, "spec.provider.address is required")
    address = stream_address(raw)
    if not address.startswith(("http://", "https://")):
        raise ProviderConfigError(name, f"spec.provider.address {raw!r} is not an http(s) or ws(s) URL")
    headers = template_headers(provider)
    headers["X-SF-Token"] = require_secret_key(credentials, "sf_token_key", name)
    headers["Content-Type"] = "text/plain"
    headers["Accept"] = "text/event-stream"
    now_ms = int(time.time() * 1000)
    params = {
        "start": str(now_ms - int(_RANGE_INTERVALS * interval * 1000)),
        "stop": str(now_ms),
        "immediate": "true",
    }
    resp = await call(
        session,
        "POST",
        address + "/v2/signalflow/execute",
        provider,
        name=name,
        timeout=timeout,
        params=params,
        headers=headers,
        data=rendered.encode(),
        read_body=read_until_end_of_channel,
    )
    return last_value(parse_events(resp.body.decode("utf-8", errors="replace")), name)


async def read_until_end_of_channel(resp: aiohttp.ClientResponse) -> bytes:
    """The event stream up to the end of the event that ends the computation.

    The server may keep the connection open after the computation ended, so waiting for EOF could hang until
    the timeout.
    """
    lines: list[bytes] = []
    size = 0
    ended = False
    async for line in resp.content:
        lines.append(line)
        size += len(line)
        if size > MAX_BODY:
            raise MalformedResponse("splunk", f"event stream is larger than {MAX_BODY // (1024 * 1024)} MiB")
        if b"END_OF_CHANNEL" in line or b"CHANNEL_ABORT" in line:
            ended = True
        elif ended and not line.strip():
            break
    return b"".join(lines)


def parse_events(text: str) -> list[tuple[str, Any]]:
    """Server-Sent Events as (event name, decoded JSON data); multi-line ``data:`` fields are joined."""
    events: list[tuple[str, Any]] = []
    data: list[str] = []
    event = "message"
    for line in [*text.splitlines(), ""]:
        if line == "":
            if data:
                try:
                    events.append((event, json.loads("\n".join(data))))
                except ValueError as exc:
                    raise MalformedResponse("splunk", f"event {event!r} data is not JSON") from exc
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    return events


def last_value(events: list[tuple[str, Any]], name: str = "splunk") -> float:
    """The last non-null datapoint of the computation's single output series."""
    series: set[str] = set()
    value: float | None = None
    for kind, payload in events:
        if kind == "error":
            errors = payload.get("errors", payload) if isinstance(payload, dict) else payload
            raise ProviderConfigError(name, f"SignalFlow program rejected: {errors}")
        if kind == "control-message" and isinstance(payload, dict) and payload.get("event") == "CHANNEL_ABORT":
            raise MalformedResponse(name, f"computation aborted: {payload.get('abortInfo')}")
        if kind != "data":
            continue
        points = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(points, list):
            raise MalformedResponse(name, "data message without a 'data' list")
        for point in points:
            if not isinstance(point, dict) or "tsId" not in point:
                raise MalformedResponse(name, f"datapoint without tsId: {point!r}")
            if point.get("value") is None:
                continue
            value = number(point["value"], name, "datapoint value")
            series.add(str(point["tsId"]))
    if value is None:
        raise NoData(name, "no values found (the program published no data)")
    if len(series) > 1:
        raise MultipleSeries(name, f"program published {len(series)} series, expected one")
    return finite(value, name)
