"""Dynatrace: the metrics API v2 (``GET /api/v2/metrics/query``), as Flagger's dynatrace provider does.

Secret key ``dynatrace_token`` (sent as ``Authorization: Api-Token ...``). The template is a metric selector;
``resolution=Inf`` folds the last ten intervals into one value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    deadline,
    finite,
    provider_name,
    require_address,
    require_secret_key,
    ssl_option,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, MultipleSeries, NoData
from flaggerpy.analysis.providers.http import request, snippet

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
    """Run ``rendered`` as a metric selector and return its single value."""
    name = provider_name(provider, "dynatrace")
    url = require_address(provider, name) + "/api/v2/metrics/query"
    headers = template_headers(provider)
    headers["Authorization"] = "Api-Token " + require_secret_key(credentials, "dynatrace_token", name)
    now_ms = int(time.time() * 1000)
    params = {
        "metricSelector": rendered.strip(),
        "resolution": "Inf",
        "from": str(now_ms - int(_RANGE_INTERVALS * interval * 1000)),
        "to": str(now_ms),
    }
    async with deadline(timeout, name):
        resp = await request(
            session,
            "GET",
            url,
            provider=name,
            time_limit=timeout,
            params=params,
            headers=headers,
            ssl=ssl_option(provider),
        )
    return parse_response(resp.json(name), resp.body, name)


def parse_response(payload: Any, body: bytes, name: str = "dynatrace") -> float:
    """The value of the single series of the single metric in a metrics API v2 answer."""
    results = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise MalformedResponse(name, f"no 'result' list in the answer: {snippet(body)}")
    if not results:
        raise NoData(name, "no values found (no metric matched)")
    if len(results) > 1:
        raise MultipleSeries(name, f"selector matched {len(results)} metrics, expected one")
    data = results[0].get("data") if isinstance(results[0], dict) else None
    if not isinstance(data, list):
        raise MalformedResponse(name, f"result has no 'data' list: {snippet(body)}")
    if not data:
        raise NoData(name, "no values found (no series for the selector)")
    if len(data) > 1:
        raise MultipleSeries(name, f"selector returned {len(data)} series (dimensions), expected one")
    values = data[0].get("values") if isinstance(data[0], dict) else None
    if not isinstance(values, list):
        raise MalformedResponse(name, f"series has no 'values' list: {snippet(body)}")
    present = [value for value in values if value is not None]
    if not present:
        raise NoData(name, "no values found (the series has no value in range)")
    value = present[-1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(name, f"value {value!r} is not a number")
    return finite(float(value), name)
