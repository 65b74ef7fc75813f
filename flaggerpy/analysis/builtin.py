"""The builtin ``request-success-rate`` and ``request-duration`` checks as PromQL templates.

Flagger picks the query by mesh/ingress provider; for Gateway API data planes the useful choices are:

- ``http`` (default, alias ``gatewayapi``): the application's own ``http_request_duration_seconds`` histogram,
  scraped with ``kubernetes_namespace``/``kubernetes_pod_name`` labels: the queries of Flagger's observer for a
  ``gatewayapi`` provider, so a Flagger user's builtin checks measure the same series.
- ``istio``: Istio's standard metrics as a sidecar on the destination reports them
  (``istio_requests_total``, ``istio_request_duration_milliseconds_bucket``), Flagger's Istio builtin queries.
- ``envoy`` (alias ``contour``): Envoy upstream cluster stats with Contour's cluster naming
  ``<namespace>_<service>-canary_<port>``, Flagger's Contour builtin queries. Contour and Envoy-based gateways
  that keep that naming export these.
- ``traefik``: Traefik's service metrics (``traefik_service_requests_total``,
  ``traefik_service_request_duration_seconds_bucket``), as Flagger's traefik observer queries them, on the service
  names Traefik's Kubernetes Gateway provider gives a route's backends
  (``<route...>-svc-<namespace>-<service>-canary-<index>@kubernetesgateway``); durations are converted to ms.

The controller's ``--metrics-flavour`` picks one for every canary; a Canary annotated
``flaggerpy.io/metrics-flavour: <name>`` picks its own.

Success rate is a percentage (0-100) of non-5xx responses; duration is the P99 in milliseconds (the ``http``
flavour converts from seconds, as Flagger's observer does).
"""

from __future__ import annotations

import enum

SUCCESS_RATE = "request-success-rate"
DURATION = "request-duration"
BUILTIN_METRICS = (SUCCESS_RATE, DURATION)


class Flavour(enum.StrEnum):
    """Which metric names the builtin checks query."""

    ISTIO = "istio"
    ENVOY = "envoy"
    TRAEFIK = "traefik"
    HTTP = "http"


DEFAULT_FLAVOUR = Flavour.HTTP
# A Canary annotated with a flavour name uses it instead of the controller's --metrics-flavour (a cluster can run
# Traefik for some routes and an Istio gateway for others).
FLAVOUR_ANNOTATION = "flaggerpy.io/metrics-flavour"
_ALIASES = {"contour": Flavour.ENVOY, "gatewayapi": Flavour.HTTP, "kubernetes": Flavour.HTTP}

_ISTIO_SELECTOR = (
    'reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}"'
)
_ENVOY_SELECTOR = 'envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"'
_TRAEFIK_SELECTOR = 'service=~".+-svc-{{ namespace }}-{{ service }}-canary-[0-9]+@kubernetesgateway"'
_HTTP_SELECTOR = (
    'kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"'
)


def _success_rate(metric: str, selector: str, code_label: str) -> str:
    ok = f'{metric}{{{selector}, {code_label}!~"5.*"}}[{{{{ interval }}}}]'
    total = f"{metric}{{{selector}}}[{{{{ interval }}}}]"
    return f"sum(rate({ok})) / sum(rate({total})) * 100"


def _p99(bucket_metric: str, selector: str, scale: str = "") -> str:
    return f"histogram_quantile(0.99, sum(rate({bucket_metric}{{{selector}}}[{{{{ interval }}}}])) by (le)){scale}"


_QUERIES: dict[Flavour, dict[str, str]] = {
    Flavour.ISTIO: {
        SUCCESS_RATE: _success_rate("istio_requests_total", _ISTIO_SELECTOR, "response_code"),
        DURATION: _p99("istio_request_duration_milliseconds_bucket", _ISTIO_SELECTOR),
    },
    Flavour.ENVOY: {
        SUCCESS_RATE: _success_rate("envoy_cluster_upstream_rq", _ENVOY_SELECTOR, "envoy_response_code"),
        DURATION: _p99("envoy_cluster_upstream_rq_time_bucket", _ENVOY_SELECTOR),
    },
    Flavour.TRAEFIK: {
        SUCCESS_RATE: _success_rate("traefik_service_requests_total", _TRAEFIK_SELECTOR, "code"),
        DURATION: _p99("traefik_service_request_duration_seconds_bucket", _TRAEFIK_SELECTOR, " * 1000"),
    },
    Flavour.HTTP: {
        SUCCESS_RATE: _success_rate("http_request_duration_seconds_count", _HTTP_SELECTOR, "status"),
        DURATION: _p99("http_request_duration_seconds_bucket", _HTTP_SELECTOR, " * 1000"),
    },
}


def parse_flavour(text: str | Flavour) -> Flavour:
    """A flavour from its name or an alias; ValueError lists the accepted names."""
    key = str(text).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return Flavour(key)
    except ValueError:
        names = ", ".join([*(f.value for f in Flavour), *_ALIASES])
        raise ValueError(f"builtin metrics flavour {text!r} is unknown (one of: {names})") from None


def builtin_query(metric_name: str, flavour: Flavour | str = DEFAULT_FLAVOUR) -> str:
    """The PromQL template (with Flagger's ``{{ }}`` variables) of a builtin check; KeyError for other names."""
    queries = _QUERIES[parse_flavour(flavour)]
    if metric_name not in queries:
        raise KeyError(f"{metric_name!r} is not a builtin metric ({', '.join(BUILTIN_METRICS)})")
    return queries[metric_name]
