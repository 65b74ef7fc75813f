"""The sandbox's Prometheus: the HTTP query API over the data plane's own counters.

On a machine without Prometheus, the analysis still needs something that answers PromQL. This in-sandbox
controller scrapes the data plane's exposition every ``scrape_interval`` seconds into a short history and serves
Prometheus's instant-query API under :data:`PREFIX`, so a Canary's ``metricsServer`` (or a MetricTemplate's
``provider.address``) can be ``<sandbox url>/sandbox/prometheus``:

- ``GET|POST /sandbox/prometheus/api/v1/query`` (``query``, optional ``time``): Prometheus's JSON answer, or its
  ``bad_data`` / ``execution`` error naming the problem;
- ``GET /sandbox/prometheus/-/ready``.

The PromQL subset: selectors with ``= != =~ !~``, ranges, ``offset``; ``rate irate increase histogram_quantile
abs ceil floor sqrt clamp_min clamp_max scalar vector time``; ``sum avg max min count`` with ``by``/``without``;
``+ - * / % ^`` between scalars and vectors (one-to-one, ``on``/``ignoring``); comparisons (``bool``);
``and or unless``; parentheses and number literals. Anything else is refused, never approximated.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from flaggerpy.sandbox.promql.eval import RangeSeries, Sample, Value, evaluate
from flaggerpy.sandbox.promql.parse import MatrixSelector, PromQLError, format_float, parse
from flaggerpy.sandbox.promql.store import ExpositionError, Labels, SampleStore, parse_exposition

# The sandbox is a standalone server: it logs through structlog directly.
log = structlog.get_logger(logger_name="flaggerpy.sandbox.promql")

PREFIX = "/sandbox/prometheus"
JOB = "sandbox-dataplane"


@dataclass(frozen=True, slots=True)
class PromQLSettings:
    """Scrape cadence, history length and idling of the sandbox's Prometheus."""

    scrape_interval: float = 1.0
    # Seconds of samples kept; ranges longer than this see only what is kept.
    retention: float = 600.0
    # Scraping stops after this many seconds without a query (and starts again with the next one), so sandboxes
    # nobody queries (benchmarks with thousands of routes) pay nothing for it.
    idle_after: float = 600.0
    # The value of the ``instance`` label added to every series.
    instance: str = "sandbox"


class PromQLServer:
    """An in-sandbox controller: scrapes ``source()`` (Prometheus text) on an interval and answers queries.

    It starts idle: the first query, or :meth:`activate`, starts the scraping. A first query therefore sees no
    history yet; callers that need ``rate()`` from the start (a demo, a test) call :meth:`activate` up front.
    """

    name = "promql"

    def __init__(self, source: Callable[[], str], settings: PromQLSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or PromQLSettings()
        self.store = SampleStore(self.settings.retention)
        self._source = source
        self._clock = clock
        self._active = asyncio.Event()
        self._last_use = time.monotonic()

    def activate(self) -> None:
        """Start (or keep) scraping now; it idles again after ``idle_after`` seconds without queries."""
        self._last_use = time.monotonic()
        self._active.set()

    @property
    def active(self) -> bool:
        """Whether the server is scraping."""
        return self._active.is_set()

    async def run(self, cluster: object) -> None:
        """Scrape every ``scrape_interval`` seconds while active, until cancelled (the cluster is not needed)."""
        while True:
            await self._active.wait()
            if time.monotonic() - self._last_use > self.settings.idle_after:
                self._active.clear()
                continue
            self.scrape()
            await asyncio.sleep(self.settings.scrape_interval)

    def scrape(self) -> None:
        """Take one scrape of the source now."""
        try:
            samples = self.parse(self._source())
        except ExpositionError as exc:
            # Like Prometheus: a broken exposition fails the whole scrape, its series go stale.
            log.warning("scrape failed", error=str(exc))
            samples = {}
        self.store.append(self._clock(), samples)

    def parse(self, text: str) -> dict[Labels, float]:
        """Samples of one exposition document with the ``job`` and ``instance`` labels a scrape adds."""
        extra = (("instance", self.settings.instance), ("job", JOB))
        out: dict[Labels, float] = {}
        for labels, value in parse_exposition(text):
            merged = dict(labels)
            merged.update(extra)
            out[tuple(sorted(merged.items()))] = value
        return out

    def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        """The ``data`` object of an instant query's answer; PromQLError when it cannot be answered."""
        self.activate()
        expr = parse(promql)
        when = self._clock() if at is None else at
        return render(evaluate(expr, self.store, when), when, matrix=isinstance(expr, MatrixSelector))

    def routes(self) -> list[web.RouteDef]:
        """The query API, mounted by the sandbox server under :data:`PREFIX`."""

        async def query(request: web.Request) -> web.Response:
            params: dict[str, str] = dict(request.query)
            if request.method == "POST":
                params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
            return self.answer(params)

        async def ready(_: web.Request) -> web.Response:
            return web.Response(text="Prometheus Server is Ready.\n")

        return [
            web.get(f"{PREFIX}/api/v1/query", query),
            web.post(f"{PREFIX}/api/v1/query", query),
            web.get(f"{PREFIX}/-/ready", ready),
        ]

    def answer(self, params: dict[str, str]) -> web.Response:
        """The HTTP answer to a query API request with form/query ``params``."""
        promql = params.get("query")
        if not promql:
            return _error("bad_data", 'invalid parameter "query": the query is empty or missing')
        at: float | None = None
        if params.get("time"):
            try:
                at = parse_time(params["time"])
            except ValueError as exc:
                return _error("bad_data", f'invalid parameter "time": {exc}')
        try:
            data = self.query(promql, at)
        except PromQLError as exc:
            if exc.kind == "bad_data":
                return _error("bad_data", f'invalid parameter "query": {exc}')
            return _error(exc.kind, str(exc), status=422)
        return web.json_response({"status": "success", "data": data})


def _error(kind: str, message: str, status: int = 400) -> web.Response:
    return web.json_response({"status": "error", "errorType": kind, "error": message}, status=status)


def parse_time(text: str) -> float:
    """Seconds since the epoch from a Unix timestamp or an RFC 3339 date, as the query API accepts them."""
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"cannot parse {text!r} to a valid timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"cannot parse {text!r} to a valid timestamp")
    return value


def _timestamp(at: float) -> float:
    # Prometheus answers timestamps in seconds with millisecond precision.
    return round(at, 3)


def render(value: Value, at: float, *, matrix: bool = False) -> dict[str, Any]:
    """Prometheus's ``data`` object for a scalar, vector or (``matrix``) range vector result."""
    stamp = _timestamp(at)
    if not isinstance(value, list):
        return {"resultType": "scalar", "result": [stamp, format_float(float(value))]}
    if matrix:
        return {
            "resultType": "matrix",
            "result": [
                {"metric": series.labels, "values": [[_timestamp(t), format_float(v)] for t, v in series.points]}
                for series in value
                if isinstance(series, RangeSeries)
            ],
        }
    return {
        "resultType": "vector",
        "result": [
            {"metric": sample.labels, "value": [stamp, format_float(sample.value)]}
            for sample in value
            if isinstance(sample, Sample)
        ],
    }
