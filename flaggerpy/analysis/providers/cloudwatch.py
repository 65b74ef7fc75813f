"""AWS CloudWatch: ``GetMetricData`` over the CloudWatch query API, signed with SigV4.

The template is a JSON list of MetricDataQuery objects, exactly as Flagger takes it (field names in the API's
PascalCase; like Go's JSON decoding, any letter case is accepted). ``spec.provider.region`` is required;
``spec.provider.address`` overrides the regional endpoint (VPC endpoints, LocalStack). Credentials come from the
Secret (``aws_access_key_id``, ``aws_secret_access_key``, optional ``aws_session_token``) or, without a
``secretRef``, from the controller's ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``: only
when the operator enables ambient credentials and towards AWS's own endpoints, so that a tenant cannot have the
controller sign requests to an address of its choosing.
The range is the last ten intervals; the newest value of the single returned result wins, as in Flagger.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    finite,
    provider_name,
    require_address,
    template_headers,
)
from flaggerpy.analysis.providers.errors import (
    MalformedResponse,
    MultipleSeries,
    NoData,
    ProviderConfigError,
)
from flaggerpy.analysis.providers.http import call, described
from flaggerpy.analysis.providers.sigv4 import AwsCredentials, sign
from flaggerpy.outbound import ambient_credentials_allowed, official_endpoint

API_VERSION = "2010-08-01"
AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn")
SERVICE = "monitoring"
_RANGE_INTERVALS = 10
_MAX_DATAPOINTS = 20
_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
# The MetricDataQuery shape (and its nested structures) in the API's own spelling, keyed by lower case.
_FIELDS = {
    name.lower(): name
    for name in (
        "Id", "Expression", "Label", "ReturnData", "Period", "AccountId", "MetricStat",
        "Metric", "Stat", "Unit", "Namespace", "MetricName", "Dimensions", "Name", "Value",
    )
}  # fmt: skip


def credentials_from(secret: Mapping[str, str], name: str, endpoint: str) -> AwsCredentials:
    """Access keys from the Secret, else from the controller's environment; a config error when neither has them.

    The environment's keys are the controller's identity: used only with ambient credentials enabled and an
    ``endpoint`` on amazonaws.com.
    """
    source: Mapping[str, str] = secret
    keys = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    if not secret:
        if not ambient_credentials_allowed():
            raise ProviderConfigError(
                name,
                "spec.provider.secretRef is required (the controller's own AWS identity is used only with "
                "--enable-ambient-credentials)",
            )
        if not official_endpoint(endpoint, AWS_DOMAINS):
            raise ProviderConfigError(
                name,
                "spec.provider.address: the controller's own AWS identity is only sent to https://*.amazonaws.com; "
                "remove the address or set spec.provider.secretRef",
            )
        source = {key: os.environ.get(key.upper(), "") for key in keys}
    key_id, secret_key, token = (source.get(key, "") for key in keys)
    if not key_id or not secret_key:
        where = "the secret referenced by spec.provider.secretRef" if secret else "the controller environment"
        raise ProviderConfigError(name, f"{where} has no aws_access_key_id/aws_secret_access_key")
    return AwsCredentials(key_id, secret_key, token or None)


def flatten_queries(rendered: str, name: str) -> dict[str, str]:
    """The template's JSON list of MetricDataQuery as query-API form fields (``MetricDataQueries.member.1.Id``)."""
    try:
        queries = json.loads(rendered)
    except ValueError as exc:
        raise ProviderConfigError(name, f"query is not a JSON list of MetricDataQuery: {exc}") from exc
    if not isinstance(queries, list) or not queries:
        raise ProviderConfigError(name, "query must be a non-empty JSON list of MetricDataQuery objects")
    fields: dict[str, str] = {}
    _flatten("MetricDataQueries", queries, fields, name, "query")
    return fields


def _flatten(prefix: str, value: Any, out: dict[str, str], name: str, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            canonical = _FIELDS.get(str(key).lower())
            if canonical is None:
                raise ProviderConfigError(name, f"{path}.{key}: not a MetricDataQuery field")
            _flatten(f"{prefix}.{canonical}", item, out, name, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(f"{prefix}.member.{index + 1}", item, out, name, f"{path}[{index}]")
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    elif isinstance(value, int | float | str):
        out[prefix] = str(value)
    else:
        raise ProviderConfigError(name, f"{path}: unsupported value {value!r}")


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` (MetricDataQuery JSON) through GetMetricData and return the newest value."""
    name = provider_name(provider, "cloudwatch")
    region = (provider.region or "").strip()
    if not region:
        raise ProviderConfigError(name, "spec.provider.region is required")
    endpoint = require_address(provider, name) if provider.address else f"https://{SERVICE}.{region}.amazonaws.com"
    aws = credentials_from(credentials, name, endpoint)
    end = time.time()
    form = {
        "Action": "GetMetricData",
        "Version": API_VERSION,
        "StartTime": _iso(end - _RANGE_INTERVALS * interval),
        "EndTime": _iso(end),
        "MaxDatapoints": str(_MAX_DATAPOINTS),
        **flatten_queries(rendered, name),
    }
    body = urlencode(form).encode()
    url = URL(endpoint + "/")
    host = url.host or ""
    if url.explicit_port:
        host = f"{host}:{url.port}"
    headers = template_headers(provider)
    headers["Content-Type"] = _CONTENT_TYPE
    signed = {"Content-Type": _CONTENT_TYPE}
    headers.update(sign("POST", host, url.path, {}, signed, body, credentials=aws, region=region, service=SERVICE))
    resp = await call(session, "POST", str(url), provider, name=name, timeout=timeout, headers=headers, data=body)
    return parse_response(resp.body, name)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_response(body: bytes, name: str = "cloudwatch") -> float:
    """The newest value of the single MetricDataResult in a GetMetricData XML answer."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedResponse(name, f"response is not XML: {described(body)}") from exc
    results = root.find("{*}GetMetricDataResult/{*}MetricDataResults")
    if results is None:
        raise MalformedResponse(name, f"no MetricDataResults in the answer: {described(body)}")
    members = results.findall("{*}member")
    if not members:
        raise NoData(name, "no values found (no MetricDataResults)")
    if len(members) > 1:
        ids = [member.findtext("{*}Id") for member in members]
        raise MultipleSeries(name, f"{len(members)} results returned {ids}; set ReturnData: false on helpers")
    values = members[0].findall("{*}Values/{*}member")
    if not values:
        raise NoData(name, "no values found (the result has no datapoints in range)")
    text = (values[0].text or "").strip()
    try:
        return finite(float(text), name)
    except ValueError as exc:
        raise MalformedResponse(name, f"value {text!r} is not a number") from exc
