"""InfluxDB 2.x: a Flux query on ``POST /api/v2/query``, the call Flagger's influxdb provider makes via the client.

Secret keys (when ``secretRef`` is set): ``token`` (``Authorization: Token ...``) and ``org``. The answer is
annotated CSV; the ``_value`` of the single record is the result.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping

import aiohttp

from flaggerpy.analysis.providers.base import (
    ProviderSpec,
    finite,
    only,
    provider_name,
    require_address,
    require_secret_key,
    template_headers,
)
from flaggerpy.analysis.providers.errors import MalformedResponse, NoData
from flaggerpy.analysis.providers.http import call, described

# The CSV dialect the official clients ask for: the annotation rows tell each column's type.
_DIALECT = {
    "header": True,
    "delimiter": ",",
    "annotations": ["datatype", "group", "default"],
    "commentPrefix": "#",
    "dateTimeFormat": "RFC3339",
}
_NUMERIC_TYPES = {"double", "long", "unsignedLong"}


async def query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Run ``rendered`` as a Flux query and return the ``_value`` of its single record."""
    name = provider_name(provider, "influxdb")
    url = require_address(provider, name) + "/api/v2/query"
    headers = template_headers(provider)
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "application/csv"
    params: dict[str, str] = {}
    if credentials:
        headers["Authorization"] = "Token " + require_secret_key(credentials, "token", name)
        params["org"] = require_secret_key(credentials, "org", name)
    body = json.dumps({"query": rendered, "type": "flux", "dialect": _DIALECT})
    resp = await call(
        session, "POST", url, provider, name=name, timeout=timeout, params=params, headers=headers, data=body
    )
    return parse_annotated_csv(resp.body, name)


def parse_annotated_csv(body: bytes, name: str = "influxdb") -> float:
    """The ``_value`` of the only record in an annotated-CSV answer (several tables may each have a header)."""
    values: list[tuple[str, str]] = []
    datatypes: list[str] = []
    header: list[str] | None = None
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8", errors="replace"), newline="")))
    except csv.Error as exc:
        raise MalformedResponse(name, f"answer is not CSV: {exc}") from exc
    for row in rows:
        if not row or all(cell == "" for cell in row):
            header = None  # a blank line separates tables, each with its own annotations
            continue
        if row[0] == "#datatype":
            datatypes, header = row, None
            continue
        if row[0].startswith("#"):
            continue
        if header is None:
            header = row
            continue
        record = dict(zip(header, row, strict=False))
        if "error" in record and "_value" not in record:
            raise MalformedResponse(name, f"query error: {record['error']}")
        if "_value" not in record:
            raise MalformedResponse(name, f"record has no _value column: {described(body)}")
        index = header.index("_value")
        values.append((record["_value"], datatypes[index] if index < len(datatypes) else ""))
    text, datatype = only(
        values,
        name,
        empty="no values found (the query returned no records)",
        several="query returned {count} records, expected one (end with a reducer)",
    )
    if text == "":
        raise NoData(name, "no values found (_value is null)")
    if datatype and datatype not in _NUMERIC_TYPES:
        raise MalformedResponse(name, f"_value has type {datatype}, not a number")
    try:
        return finite(float(text), name)
    except ValueError as exc:
        raise MalformedResponse(name, f"_value {text!r} is not a number") from exc
