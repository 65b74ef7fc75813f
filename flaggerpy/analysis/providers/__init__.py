"""Metric providers: one module per backend, each exposing ``async def query(...) -> float``.

:func:`get_query` is the factory keyed by the MetricTemplate's ``spec.provider.type``; :func:`run_query` calls it
under a hard deadline so one slow backend can never hold an analysis step longer than its timeout.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import aiohttp

from flaggerpy.analysis.providers.base import DEFAULT_TIMEOUT, ProviderSpec, QueryFunc, deadline
from flaggerpy.analysis.providers.errors import (
    AuthError,
    HttpError,
    MalformedResponse,
    MultipleSeries,
    NaNValue,
    NoData,
    ProviderConfigError,
    ProviderError,
    ProviderTimeout,
    Unreachable,
)

# Flagger's provider type names → our module. Modules are imported on first use: a controller that only talks to
# Prometheus never loads the SigV4 or JWT code.
PROVIDERS: dict[str, str] = {
    "prometheus": "prometheus",
    "datadog": "datadog",
    "newrelic": "newrelic",
    "graphite": "graphite",
    "influxdb": "influxdb",
    "dynatrace": "dynatrace",
    "cloudwatch": "cloudwatch",
    "stackdriver": "stackdriver",
    "splunk": "splunk",
}
# Flagger types that need something this controller does not run (a Keptn installation, the external metrics API).
UNSUPPORTED = ("keptn", "externalmetrics")

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROVIDERS",
    "AuthError",
    "HttpError",
    "MalformedResponse",
    "MultipleSeries",
    "NaNValue",
    "NoData",
    "ProviderConfigError",
    "ProviderError",
    "ProviderSpec",
    "ProviderTimeout",
    "QueryFunc",
    "Unreachable",
    "get_query",
    "run_query",
]


def get_query(provider_type: str | None) -> QueryFunc:
    """The query coroutine for a provider type; an empty type means prometheus, as in Flagger."""
    kind = (provider_type or "prometheus").strip().lower()
    module = PROVIDERS.get(kind)
    if module is None:
        if kind in UNSUPPORTED:
            raise ProviderConfigError(kind, f"spec.provider.type {kind!r} is not supported by flaggerpy")
        known = ", ".join(sorted(PROVIDERS))
        raise ProviderConfigError(kind, f"spec.provider.type {kind!r} is unknown (one of: {known})")
    func: QueryFunc = importlib.import_module(f"{__name__}.{module}").query
    return func


async def run_query(
    rendered: str,
    provider: ProviderSpec,
    credentials: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the per-check budget is part of the provider contract
    interval: float = 60.0,
) -> float:
    """Dispatch to the provider's ``query`` and enforce ``timeout`` around everything it does."""
    func = get_query(provider.type)
    name = provider.type or "prometheus"
    async with deadline(timeout, name):
        return await func(rendered, provider, credentials, session=session, timeout=timeout, interval=interval)
