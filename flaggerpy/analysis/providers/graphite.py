"""Graphite: the render URL API with ``format=json``, as Flagger's graphite provider does.

The template is the render query string itself (``target=...&from=-5min``). Optional Secret keys ``username`` and
``password`` (basic auth). The last non-null datapoint of the single returned target is the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from multidict import MultiDict

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    basic_auth_from,
    finite,
    number,
    one_line,
    only,
    provider_name,
    require_address,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, NoData, ProviderConfigError
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
    """Run ``rendered`` (a render API query string) and return the last datapoint."""
    name = provider_name(provider, "graphite")
    url = require_address(provider, name) + "/render"
    headers = template_headers(provider)
    if credentials:
        headers["Authorization"] = basic_auth_from(credentials, name)
    pairs = parse_qsl(one_line(rendered), keep_blank_values=True)
    if not any(key == "target" for key, _ in pairs):
        raise ProviderConfigError(name, "the query must be a render query string with a target= parameter")
    params: MultiDict[str] = MultiDict((key, value) for key, value in pairs if key != "format")
    params["format"] = "json"
    resp = await call(session, "GET", url, provider, name=name, timeout=timeout, params=params, headers=headers)
    return parse_response(resp.json(name), resp.body, name)


def parse_response(payload: Any, body: bytes, name: str = "graphite") -> float:
    """The last non-null datapoint of the single target in a render API answer."""
    if not isinstance(payload, list):
        raise MalformedResponse(name, f"answer is not a list of targets: {described(body)}")
    target = only(
        payload,
        name,
        empty="no values found (no target matched)",
        several="query returned {count} targets, expected one",
    )
    points = target.get("datapoints") if isinstance(target, dict) else None
    if not isinstance(points, list):
        raise MalformedResponse(name, f"target has no 'datapoints': {described(body)}")
    for point in reversed(points):
        value = _point_value(point, name)
        if value is not None:
            return finite(value, name)
    raise NoData(name, "no values found (every datapoint is null)")


def _point_value(point: Any, name: str) -> float | None:
    """The value of a ``[value, timestamp]`` datapoint; Graphite sends null for empty buckets."""
    if not isinstance(point, list) or len(point) != 2:
        raise MalformedResponse(name, f"datapoint is not [value, timestamp]: {point!r}")
    value = point[0]
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as exc:
            raise MalformedResponse(name, f"datapoint value {value!r} is not a number") from exc
    return number(value, name, "datapoint value")
