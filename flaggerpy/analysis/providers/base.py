"""What every provider module shares: the provider-settings shape, the query signature, small helpers."""

from __future__ import annotations

import asyncio
import base64
import math
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import aiohttp
from multidict import CIMultiDict

from flaggerpy.analysis.providers.errors import (
    MalformedResponse,
    MultipleSeries,
    NaNValue,
    NoData,
    ProviderConfigError,
    ProviderTimeout,
)
from flaggerpy.outbound import address_problem

T = TypeVar("T")

_WHITESPACE = re.compile(r"\s+")

# Flagger's own per-query timeout for its HTTP providers; the checker may pass a different one.
DEFAULT_TIMEOUT = 5.0


class ProviderSpec(Protocol):
    """A MetricTemplate's ``spec.provider`` (``flaggerpy.apis.flagger`` model or anything shaped like it)."""

    @property
    def type(self) -> str | None: ...

    @property
    def address(self) -> str | None: ...

    @property
    def region(self) -> str | None: ...

    @property
    def insecure_skip_verify(self) -> bool | None: ...

    @property
    def headers(self) -> Mapping[str, Any] | None: ...


class QueryFunc(Protocol):
    """The signature each provider module's ``query`` coroutine has.

    ``interval`` is the metric's window in seconds: providers without a range in the query language itself
    (Datadog, New Relic, CloudWatch, Dynatrace, Splunk) derive their time range from it, as Flagger does.
    """

    async def __call__(
        self,
        rendered: str,
        provider: ProviderSpec,
        credentials: Mapping[str, str],
        *,
        session: aiohttp.ClientSession,
        timeout: float,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
        interval: float = 60.0,
    ) -> float: ...


def provider_name(provider: ProviderSpec, default: str) -> str:
    """The provider type for messages; an empty type means the default (Flagger falls back to prometheus)."""
    return provider.type or default


def require_address(provider: ProviderSpec, name: str) -> str:
    """The provider address without a trailing slash, or a config error naming the field."""
    address = (provider.address or "").strip()
    if not address:
        raise ProviderConfigError(name, "spec.provider.address is required")
    problem = address_problem(address)
    if problem is not None:
        raise ProviderConfigError(name, f"spec.provider.address {problem}")
    return address.rstrip("/")


def require_secret_key(credentials: Mapping[str, str], key: str, name: str) -> str:
    """A value from the provider's Secret, or a config error naming the missing key (never the values)."""
    value = credentials.get(key)
    if value is None or value == "":
        raise ProviderConfigError(name, f"the secret referenced by spec.provider.secretRef has no key {key!r}")
    return value


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def basic_auth_from(credentials: Mapping[str, str], name: str) -> str:
    """Basic auth from the provider Secret's ``username`` and ``password`` keys (a config error names a missing one)."""
    user = require_secret_key(credentials, "username", name)
    return basic_auth(user, require_secret_key(credentials, "password", name))


def template_headers(provider: ProviderSpec) -> CIMultiDict[str]:
    """``spec.provider.headers`` as request headers.

    Flagger declares the field as Go's ``http.Header`` (a list of values per name); a single string per name is
    accepted too, because that is what people write.
    """
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in (provider.headers or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            headers.add(str(key), str(item))
    return headers


def one_line(rendered: str) -> str:
    """A rendered template with every run of white space (newlines included) folded to one space, then trimmed.

    Multi-line templates stay short enough for a GET URL, as Flagger sends them.
    """
    return _WHITESPACE.sub(" ", rendered).strip()


def ssl_option(provider: ProviderSpec) -> bool:
    """aiohttp's ``ssl`` argument: False disables certificate checks when the template asks for it."""
    return not provider.insecure_skip_verify


def finite(value: float, name: str) -> float:
    """``value`` unless it is NaN, which counts as "no values found" like in Flagger."""
    if math.isnan(value):
        raise NaNValue(name, "query returned NaN (no values found)")
    return value


def only(items: list[T], name: str, *, empty: str, several: str) -> T:
    """The single element of a backend's list of series (or results, records...).

    None is NoData with the message ``empty``; more than one is MultipleSeries with ``several``, in which
    ``{count}`` stands for how many there are.
    """
    if not items:
        raise NoData(name, empty)
    if len(items) > 1:
        raise MultipleSeries(name, several.format(count=len(items)))
    return items[0]


def number(value: Any, name: str, what: str) -> float:
    """A JSON number as float, or MalformedResponse naming ``what`` it was (JSON booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(name, f"{what} {value!r} is not a number")
    return float(value)


@asynccontextmanager
async def deadline(seconds: float, name: str) -> AsyncIterator[None]:
    """Bound a whole query (token exchange, retries and all) by ``seconds``; raise ProviderTimeout past it."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise ProviderTimeout(name, f"no answer within {seconds:g}s") from exc
