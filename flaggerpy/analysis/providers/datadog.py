"""Datadog: the v1 timeseries query API (``GET /api/v1/query``), as Flagger's datadog provider uses it.

Secret keys: ``datadog_api_key`` and ``datadog_application_key``. The time range is the last ten metric intervals
and the FIRST point of the series is used: Datadog's newest bucket is usually still filling up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    finite,
    number,
    only,
    provider_name,
    require_secret_key,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, NoData
from flaggerpy.analysis.providers.http import call, described

DEFAULT_ADDRESS = "https://api.datadoghq.com"
# Flagger queries ten intervals back so a sparse metric still has a point in range.
_RANGE_INTERVALS = 10


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` as a Datadog metrics query over the last ten intervals; return its first point."""
    name = provider_name(provider, "datadog")
    address = (provider.address or DEFAULT_ADDRESS).rstrip("/")
    headers = template_headers(provider)
    headers["DD-API-KEY"] = require_secret_key(credentials, "datadog_api_key", name)
    headers["DD-APPLICATION-KEY"] = require_secret_key(credentials, "datadog_application_key", name)
    now = int(time.time())
    params = {"query": rendered, "from": str(now - int(_RANGE_INTERVALS * interval)), "to": str(now)}
    url = address + "/api/v1/query"
    resp = await call(session, "GET", url, provider, name=name, timeout=timeout, params=params, headers=headers)
    return parse_response(resp.json(name), resp.body, name)


def parse_response(payload: Any, body: bytes, name: str = "datadog") -> float:
    """The first non-null point of the single series in a Datadog query answer."""
    if not isinstance(payload, dict) or not isinstance(payload.get("series", []), list):
        raise MalformedResponse(name, f"no 'series' list in the answer: {described(body)}")
    if payload.get("status") == "error":
        raise MalformedResponse(name, f"query error: {payload.get('error', described(body))}")
    series = only(
        payload.get("series") or [],
        name,
        empty="no values found (the query matched no series)",
        several="query returned {count} series, expected one",
    )
    points = series.get("pointlist") if isinstance(series, dict) else None
    if not isinstance(points, list):
        raise MalformedResponse(name, f"series has no 'pointlist': {described(body)}")
    for point in points:
        if not isinstance(point, list) or len(point) != 2:
            raise MalformedResponse(name, f"point is not [timestamp, value]: {point!r}")
        if point[1] is not None:
            return finite(number(point[1], name, "point value"), name)
    raise NoData(name, "no values found (the series has no points in range)")
