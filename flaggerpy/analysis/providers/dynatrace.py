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
    finite,
    number,
    only,
    provider_name,
    require_address,
    require_secret_key,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, NoData
from flaggerpy.analysis.providers.http import call, described

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
    resp = await call(session, "GET", url, provider, name=name, timeout=timeout, params=params, headers=headers)
    return parse_response(resp.json(name), resp.body, name)


def parse_response(payload: Any, body: bytes, name: str = "dynatrace") -> float:
    """The value of the single series of the single metric in a metrics API v2 answer."""
    results = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise MalformedResponse(name, f"no 'result' list in the answer: {described(body)}")
    result = only(
        results,
        name,
        empty="no values found (no metric matched)",
        several="selector matched {count} metrics, expected one",
    )
    data = result.get("data") if isinstance(result, dict) else None
    if not isinstance(data, list):
        raise MalformedResponse(name, f"result has no 'data' list: {described(body)}")
    series = only(
        data,
        name,
        empty="no values found (no series for the selector)",
        several="selector returned {count} series (dimensions), expected one",
    )
    values = series.get("values") if isinstance(series, dict) else None
    if not isinstance(values, list):
        raise MalformedResponse(name, f"series has no 'values' list: {described(body)}")
    present = [value for value in values if value is not None]
    if not present:
        raise NoData(name, "no values found (the series has no value in range)")
    return finite(number(present[-1], name, "value"), name)
