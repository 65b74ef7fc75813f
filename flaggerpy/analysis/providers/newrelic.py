"""New Relic: an NRQL query on the Insights query API, as Flagger's newrelic provider does.

Secret keys: ``newrelic_account_id`` and ``newrelic_query_key``. ``SINCE <interval> seconds ago`` is appended to
the query, so templates must not carry their own SINCE clause (Flagger's rule too).
"""

from __future__ import annotations

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
from flaggerpy.analysis.providers.errors import MalformedResponse, MultipleSeries, NoData
from flaggerpy.analysis.providers.http import call, described

DEFAULT_ADDRESS = "https://insights-api.newrelic.com"


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` as NRQL over the last metric interval and return its single result."""
    name = provider_name(provider, "newrelic")
    address = (provider.address or DEFAULT_ADDRESS).rstrip("/")
    account = require_secret_key(credentials, "newrelic_account_id", name)
    headers = template_headers(provider)
    headers["X-Query-Key"] = require_secret_key(credentials, "newrelic_query_key", name)
    nrql = f"{rendered.strip()} SINCE {int(interval)} seconds ago"
    url = f"{address}/v1/accounts/{account}/query"
    resp = await call(session, "GET", url, provider, name=name, timeout=timeout, params={"nrql": nrql}, headers=headers)
    return parse_response(resp.json(name), resp.body, name)


def parse_response(payload: Any, body: bytes, name: str = "newrelic") -> float:
    """The single result of an Insights NRQL answer."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise MalformedResponse(name, f"no 'results' list in the answer: {described(body)}")
    result = only(
        results, name, empty="no values found (empty results)", several="query returned {count} results, expected one"
    )
    return finite(_single_number(result, name, body), name)


def _single_number(result: Any, name: str, body: bytes) -> float:
    """The value of ``{"result": x}`` or of a one-field result such as ``{"average": x}``."""
    if not isinstance(result, dict):
        raise MalformedResponse(name, f"result is not an object: {described(body)}")
    if "result" in result:
        value = result["result"]
    elif len(result) == 1:
        value = next(iter(result.values()))
    else:
        raise MultipleSeries(name, f"result has several fields {sorted(result)}; select one value")
    if value is None:
        raise NoData(name, "no values found (result is null)")
    return number(value, name, "result")
