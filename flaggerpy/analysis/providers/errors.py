"""Typed failures of a metric provider query.

Every provider raises one of these and nothing else, so the metric checker can tell "the canary gets no traffic
yet" (:class:`NoData`) from "the metrics backend is broken" (everything else) without parsing messages. Messages
name the provider and what happened; they never contain credentials.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A metric query failed; ``provider`` is the MetricTemplate's ``spec.provider.type``."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class ProviderConfigError(ProviderError):
    """The MetricTemplate's provider settings or its Secret cannot work (missing address, key, region...)."""


class NoData(ProviderError):
    """The query matched no series or points: usually the canary is not receiving traffic yet."""


class NaNValue(NoData):
    """The query answered NaN (e.g. a ratio of two zero rates), which Flagger also treats as "no values found"."""


class MultipleSeries(ProviderError):
    """The query answered more than one series where a single number was expected."""


class HttpError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(self, provider: str, status: int, detail: str = "") -> None:
        message = f"HTTP {status}" + (f": {detail}" if detail else "")
        super().__init__(provider, message)
        self.status = status


class AuthError(HttpError):
    """The provider rejected our credentials (HTTP 401/403 or a failed token exchange)."""


class ProviderTimeout(ProviderError):
    """The query did not finish within its timeout."""


class Unreachable(ProviderError):
    """The provider could not be reached (DNS, connection refused, TLS failure)."""


class MalformedResponse(ProviderError):
    """The provider answered something that is not the documented response format."""
