"""Prometheus: an instant query on ``/api/v1/query`` (PromQL), as Flagger's prometheus provider does.

Credentials (optional Secret): ``token`` (sent as a bearer token) or ``username`` + ``password`` (basic auth).
Unlike Flagger, which silently keeps the last of several series, a vector with more than one series is an error:
a threshold judged against an arbitrary series is a coin toss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    basic_auth_from,
    finite,
    one_line,
    provider_name,
    require_address,
    require_secret_key,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, MultipleSeries, NoData
from flaggerpy.analysis.providers.http import call, described


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` as an instant PromQL query and return its single value."""
    name = provider_name(provider, "prometheus")
    url = require_address(provider, name) + "/api/v1/query"
    headers = template_headers(provider)
    if "token" in credentials:
        headers["Authorization"] = "Bearer " + require_secret_key(credentials, "token", name)
    elif credentials:
        headers["Authorization"] = basic_auth_from(credentials, name)
    params = {"query": one_line(rendered)}
    resp = await call(session, "GET", url, provider, name=name, timeout=timeout, params=params, headers=headers)
    return parse_result(resp.json(name), resp.body, name)


def parse_result(payload: Any, body: bytes, name: str = "prometheus") -> float:
    """The single number in a Prometheus query API answer (a one-element vector or a scalar)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise MalformedResponse(name, f"no 'data' object in the answer: {described(body)}")
    if payload.get("status", "success") != "success":
        raise MalformedResponse(name, f"query status {payload.get('status')!r}: {payload.get('error', '')}")
    data = payload["data"]
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return finite(_sample_value(result, body, name), name)
    if kind == "matrix":
        raise MultipleSeries(name, "query returned a range vector; use an instant expression (e.g. wrap in rate())")
    if kind not in ("vector", None) or not isinstance(result, list):
        raise MalformedResponse(name, f"unexpected result type {kind!r}: {described(body)}")
    if not result:
        raise NoData(name, "no values found (the query matched no series)")
    if len(result) > 1:
        labels = [series.get("metric", {}) for series in result[:3] if isinstance(series, dict)]
        raise MultipleSeries(
            name, f"query returned {len(result)} series, expected one (aggregate with sum/avg): {labels}"
        )
    series = result[0]
    if not isinstance(series, dict):
        raise MalformedResponse(name, f"vector element is not an object: {described(body)}")
    return finite(_sample_value(series.get("value"), body, name), name)


def _sample_value(sample: Any, body: bytes, name: str) -> float:
    """The value of a ``[timestamp, "value"]`` pair; Prometheus sends numbers as strings (NaN, +Inf included)."""
    if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
        raise MalformedResponse(name, f'sample is not [timestamp, "value"]: {described(body)}')
    try:
        return float(sample[1])
    except ValueError as exc:
        raise MalformedResponse(name, f"sample value {sample[1]!r} is not a number") from exc
