"""Google Cloud Monitoring (Stackdriver): an MQL query on ``projects/<project>/timeSeries:query``.

That is the REST form of the QueryTimeSeries call Flagger's stackdriver provider makes. Secret keys: ``project``
(the project id) and ``serviceAccountKey`` (a JSON key file). Without a key the controller's own identity (the
node's metadata server, as Application Default Credentials in GKE) is used only when the operator enables ambient
credentials, and only towards Google's endpoints: Flagger's provider never sends it elsewhere, and a tenant's
template must not be able to hand the controller's token to an address of its choosing. The first point of the
single returned series is the value (MQL returns the newest point first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    deadline,
    finite,
    only,
    provider_name,
    require_address,
    ssl_option,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, NoData, ProviderConfigError
from flaggerpy.analysis.providers.gcp_auth import (
    ServiceAccountKey,
    metadata_project,
    metadata_token,
    service_account_token,
)
from flaggerpy.analysis.providers.http import described, request
from flaggerpy.outbound import ambient_credentials_allowed, official_endpoint

DEFAULT_ADDRESS = "https://monitoring.googleapis.com"
GOOGLE_DOMAINS = ("googleapis.com",)


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` as an MQL query and return the newest point of its single series."""
    name = provider_name(provider, "stackdriver")
    address = require_address(provider, name) if provider.address else DEFAULT_ADDRESS
    async with deadline(timeout, name):
        key_text = credentials.get("serviceAccountKey")
        key_project = None
        if key_text:
            key = ServiceAccountKey.from_json(key_text, name)
            token = await service_account_token(key, session, name=name, time_limit=timeout)
            key_project = key.project_id
        else:
            _require_ambient(address, name)
            token = await metadata_token(name=name, time_limit=timeout)
        project = credentials.get("project") or key_project
        if not project:
            _require_ambient(address, name)
            project = await metadata_project(name=name, time_limit=timeout)
        headers = template_headers(provider)
        headers["Authorization"] = "Bearer " + token
        headers["Content-Type"] = "application/json"
        resp = await request(
            session,
            "POST",
            f"{address}/v3/projects/{project}/timeSeries:query",
            provider=name,
            time_limit=timeout,
            headers=headers,
            data=json.dumps({"query": rendered}),
            ssl=ssl_option(provider),
        )
    return parse_response(resp.json(name), resp.body, name)


def _require_ambient(address: str, name: str) -> None:
    """Refuse to use the controller's own identity unless the operator allows it and the address is Google's."""
    if not ambient_credentials_allowed():
        raise ProviderConfigError(
            name,
            "the secret referenced by spec.provider.secretRef needs 'serviceAccountKey' and 'project' (the "
            "controller's own identity is used only with --enable-ambient-credentials)",
        )
    if not official_endpoint(address, GOOGLE_DOMAINS):
        raise ProviderConfigError(
            name,
            "spec.provider.address: the controller's own identity is only sent to https://*.googleapis.com; "
            "remove the address or add a serviceAccountKey to the Secret",
        )


def parse_response(payload: Any, body: bytes, name: str = "stackdriver") -> float:
    """The first value of the first point of the single series in a QueryTimeSeries answer."""
    if not isinstance(payload, dict):
        raise MalformedResponse(name, f"answer is not an object: {described(body)}")
    series = payload.get("timeSeriesData") or []
    if not isinstance(series, list):
        raise MalformedResponse(name, f"timeSeriesData is not a list: {described(body)}")
    one = only(
        series,
        name,
        empty="no values found (the query returned no time series)",
        several="query returned {count} time series, expected one",
    )
    points = one.get("pointData") if isinstance(one, dict) else None
    if not isinstance(points, list | None):
        raise MalformedResponse(name, f"pointData is not a list: {described(body)}")
    if not points:
        raise NoData(name, "no values found (the series has no points)")
    values = points[0].get("values") if isinstance(points[0], dict) else None
    if not isinstance(values, list | None):
        raise MalformedResponse(name, f"point values are not a list: {described(body)}")
    if not values:
        raise NoData(name, "no values found (the newest point has no values)")
    return finite(_typed_value(values[0], name), name)


def _typed_value(value: Any, name: str) -> float:
    """A TypedValue: doubleValue is a JSON number, int64Value a decimal string (proto3 JSON mapping)."""
    if not isinstance(value, dict):
        raise MalformedResponse(name, f"value is not a TypedValue: {value!r}")
    for field in ("doubleValue", "int64Value"):
        if field in value:
            try:
                return float(value[field])
            except (TypeError, ValueError) as exc:
                raise MalformedResponse(name, f"{field} {value[field]!r} is not a number") from exc
    if "boolValue" in value:
        return 1.0 if value["boolValue"] else 0.0
    raise MalformedResponse(name, f"value type {sorted(value)} is not numeric")
