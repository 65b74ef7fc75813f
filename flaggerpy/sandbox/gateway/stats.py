"""Request counters of the simulated Gateway, per backend Service, per route and per workload.

Exported three ways: in-process snapshots, JSON, and Prometheus text using the metric names real Envoy-based
Gateways and Istio export, so Flagger-style PromQL runs unchanged:

- ``envoy_cluster_upstream_rq{envoy_cluster_name, envoy_response_code}`` and
  ``envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name, le}`` (milliseconds). Cluster names follow
  Contour's convention ``<namespace>_<service>_<port>``, which is what Flagger's Gateway API tutorial queries
  (``envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+"``).
- ``istio_requests_total`` and ``istio_request_duration_milliseconds_bucket`` with ``reporter="destination"`` and
  ``destination_workload``/``destination_workload_namespace``, which Flagger's builtin Istio checks query. Like a
  real sidecar, only requests that reached a workload's pod are reported there.
- ``http_request_duration_seconds`` (buckets, ``_count`` by ``status``) with ``kubernetes_namespace`` and
  ``kubernetes_pod_name``, as an instrumented app such as podinfo exports it and Prometheus' pod discovery labels
  it; Flagger's builtin checks for ``provider: gatewayapi`` query these.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# Envoy's default histogram buckets, in milliseconds.
ENVOY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)
# Istio's default request-duration buckets, in milliseconds.
ISTIO_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)

# The Prometheus client libraries' default buckets (seconds), kept in milliseconds like every other series here.
APP_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class _Series:
    """Counts by status code and a latency histogram; a few dict and list updates per request."""

    __slots__ = ("bounds", "buckets", "codes", "sum_ms")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(bounds) + 1)
        self.sum_ms = 0.0

    def observe(self, code: int, latency_ms: float) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        self.buckets[bisect_left(self.bounds, latency_ms)] += 1
        self.sum_ms += latency_ms

    def snapshot(self) -> SeriesStats:
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        return SeriesStats(dict(self.codes), tuple(cumulative), self.sum_ms)


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """A point-in-time copy of one series: responses by code, cumulative buckets (le_ms, count), latency sum."""

    codes: dict[int, int]
    buckets: tuple[tuple[float, int], ...]
    latency_sum_ms: float

    @property
    def requests(self) -> int:
        """All responses counted."""
        return sum(self.codes.values())

    @property
    def errors(self) -> int:
        """5xx responses."""
        return sum(count for code, count in self.codes.items() if code >= 500)

    @property
    def error_rate(self) -> float:
        """errors / requests, 0.0 when nothing was counted."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_ms(self) -> float:
        """Mean latency, 0.0 when nothing was counted."""
        return self.latency_sum_ms / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float:
        """Latency quantile estimated from the buckets the way PromQL's histogram_quantile does."""
        total = self.buckets[-1][1] if self.buckets else 0
        if total == 0:
            return 0.0
        rank = q * total
        lower_bound, lower_count = 0.0, 0
        for bound, count in self.buckets:
            if count >= rank:
                if bound == float("inf"):
                    return lower_bound
                width = count - lower_count
                return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
            lower_bound, lower_count = bound, count
        return lower_bound

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "codes": {str(code): count for code, count in sorted(self.codes.items())},
            "latencySumMs": round(self.latency_sum_ms, 3),
            "latencyBucketsMs": [["+Inf" if le == float("inf") else le, n] for le, n in self.buckets],
        }


def _empty(bounds: tuple[float, ...]) -> SeriesStats:
    return _Series(bounds).snapshot()


class DataPlaneStats:
    """All counters of one data plane."""

    def __init__(self) -> None:
        self._clusters: dict[tuple[str, str, int | None], _Series] = {}
        self._routes: dict[tuple[str, str, str], _Series] = {}
        self._workloads: dict[tuple[str, str, str, str], _Series] = {}
        self._pods: dict[tuple[str, str, int], _Series] = {}

    def record(
        self,
        service: tuple[str, str, int | None],
        route: tuple[str, str, str] | None,
        workload: tuple[str, str, str] | None,
        code: int,
        latency_ms: float,
    ) -> None:
        """Count one response from backend ``service`` (namespace, name, port) through ``route``.

        ``workload`` (namespace, name, pod) is set when the request reached a pod: Istio and the app report only
        those.
        """
        series = self._clusters.get(service)
        if series is None:
            series = self._clusters[service] = _Series(ENVOY_BUCKETS_MS)
        series.observe(code, latency_ms)
        if route is not None:
            series = self._routes.get(route)
            if series is None:
                series = self._routes[route] = _Series(ENVOY_BUCKETS_MS)
            series.observe(code, latency_ms)
        if workload is not None:
            key = (workload[0], workload[1], service[0], service[1])
            series = self._workloads.get(key)
            if series is None:
                series = self._workloads[key] = _Series(ISTIO_BUCKETS_MS)
            series.observe(code, latency_ms)
            pod_key = (workload[0], workload[2], code)
            series = self._pods.get(pod_key)
            if series is None:
                series = self._pods[pod_key] = _Series(APP_BUCKETS_MS)
            series.observe(code, latency_ms)

    def record_route_only(self, route: tuple[str, str, str], code: int, latency_ms: float) -> None:
        """Count a response the Gateway produced itself for a route (no backend chosen)."""
        series = self._routes.get(route)
        if series is None:
            series = self._routes[route] = _Series(ENVOY_BUCKETS_MS)
        series.observe(code, latency_ms)

    def service(self, namespace: str, name: str) -> SeriesStats:
        """Totals for backend Service namespace/name over all its ports (zeros when it saw no traffic)."""
        return _merge(
            [series for (ns, svc, _), series in self._clusters.items() if ns == namespace and svc == name],
            ENVOY_BUCKETS_MS,
        )

    def route(self, namespace: str, name: str, kind: str = "HTTPRoute") -> SeriesStats:
        """Totals for a route (zeros when it saw no traffic)."""
        series = self._routes.get((kind, namespace, name))
        return series.snapshot() if series is not None else _empty(ENVOY_BUCKETS_MS)

    def workload(self, namespace: str, name: str) -> SeriesStats:
        """Totals for a workload (Deployment/DaemonSet) as Istio's destination reporter would count them."""
        return _merge(
            [series for (ns, wl, _, _), series in self._workloads.items() if ns == namespace and wl == name],
            ISTIO_BUCKETS_MS,
        )

    def reset(self) -> None:
        """Forget every counter (tests and demos start from zero)."""
        self._clusters.clear()
        self._routes.clear()
        self._workloads.clear()
        self._pods.clear()

    def as_json(self) -> dict:
        """Every series in a JSON-ready document."""
        return {
            "services": [
                {"namespace": ns, "name": name, "port": port, "cluster": cluster_name(ns, name, port),
                 **series.snapshot().as_dict()}
                for (ns, name, port), series in sorted(self._clusters.items(), key=_sort_key)
            ],
            "routes": [
                {"kind": kind, "namespace": ns, "name": name, **series.snapshot().as_dict()}
                for (kind, ns, name), series in sorted(self._routes.items())
            ],
            "workloads": [
                {"namespace": ns, "name": name, "service": svc, **series.snapshot().as_dict()}
                for (ns, name, _, svc), series in sorted(self._workloads.items())
            ],
        }

    def prometheus_text(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        lines: list[str] = [
            "# HELP envoy_cluster_upstream_rq Upstream requests by response code.",
            "# TYPE envoy_cluster_upstream_rq counter",
        ]
        clusters = sorted(self._clusters.items(), key=_sort_key)
        for (ns, name, port), series in clusters:
            label = _labels(envoy_cluster_name=cluster_name(ns, name, port))
            for code, count in sorted(series.codes.items()):
                lines.append(f'envoy_cluster_upstream_rq{{{label},envoy_response_code="{code}"}} {count}')
        lines += [
            "# HELP envoy_cluster_upstream_rq_time Upstream request time in milliseconds.",
            "# TYPE envoy_cluster_upstream_rq_time histogram",
        ]
        for (ns, name, port), series in clusters:
            label = _labels(envoy_cluster_name=cluster_name(ns, name, port))
            _histogram(lines, "envoy_cluster_upstream_rq_time", label, series)
        lines += [
            "# HELP istio_requests_total Requests reported by the destination workload.",
            "# TYPE istio_requests_total counter",
        ]
        workloads = sorted(self._workloads.items())
        for key, series in workloads:
            label = _istio_labels(*key)
            for code, count in sorted(series.codes.items()):
                lines.append(f'istio_requests_total{{{label},response_code="{code}"}} {count}')
        lines += [
            "# HELP istio_request_duration_milliseconds Request duration at the destination workload.",
            "# TYPE istio_request_duration_milliseconds histogram",
        ]
        for key, series in workloads:
            _histogram(lines, "istio_request_duration_milliseconds", _istio_labels(*key), series)
        lines += [
            "# HELP http_request_duration_seconds Request duration as the application itself reports it.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for (ns, pod, code), series in sorted(self._pods.items()):
            label = _labels(kubernetes_namespace=ns, kubernetes_pod_name=pod, status=str(code))
            _histogram(lines, "http_request_duration_seconds", label, series, scale=0.001)
        lines += [
            "# HELP sandbox_route_requests_total Requests served through each route, by response code.",
            "# TYPE sandbox_route_requests_total counter",
        ]
        for (kind, ns, name), series in sorted(self._routes.items()):
            label = _labels(kind=kind, namespace=ns, route=name)
            for code, count in sorted(series.codes.items()):
                lines.append(f'sandbox_route_requests_total{{{label},response_code="{code}"}} {count}')
        return "\n".join(lines) + "\n"


def cluster_name(namespace: str, service: str, port: int | None) -> str:
    """Contour's Envoy cluster name for a Service port: ``<namespace>_<service>_<port>``."""
    return f"{namespace}_{service}_{port if port is not None else 80}"


def _sort_key(item: tuple[tuple[str, str, int | None], _Series]) -> tuple[str, str, int]:
    (ns, name, port), _ = item
    return ns, name, port or 0


def _merge(series: list[_Series], bounds: tuple[float, ...]) -> SeriesStats:
    total = _Series(bounds)
    for item in series:
        for code, count in item.codes.items():
            total.codes[code] = total.codes.get(code, 0) + count
        total.buckets = [a + b for a, b in zip(total.buckets, item.buckets, strict=True)]
        total.sum_ms += item.sum_ms
    return total.snapshot()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())


def _istio_labels(namespace: str, workload: str, service_ns: str, service: str) -> str:
    return _labels(
        reporter="destination",
        destination_workload=workload,
        destination_workload_namespace=namespace,
        destination_service=f"{service}.{service_ns}.svc.cluster.local",
        destination_service_name=service,
        destination_service_namespace=service_ns,
        source_workload="unknown",
        request_protocol="http",
    )


def _format_le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _histogram(lines: list[str], name: str, labels: str, series: _Series, scale: float = 1.0) -> None:
    """Append one histogram's samples; ``scale`` converts the stored milliseconds to the exported unit."""
    running = 0
    for bound, count in zip((*series.bounds, float("inf")), series.buckets, strict=True):
        running += count
        lines.append(f'{name}_bucket{{{labels},le="{_format_le(bound * scale)}"}} {running}')
    lines.append(f"{name}_sum{{{labels}}} {series.sum_ms * scale}")
    lines.append(f"{name}_count{{{labels}}} {running}")
