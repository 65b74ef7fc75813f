"""The sandbox's PromQL: the queries Flagger-style checks send get Prometheus's numbers; everything else is refused."""

from __future__ import annotations

import math

import pytest

from flaggerpy.analysis.builtin import Flavour, builtin_query
from flaggerpy.analysis.templates import TemplateModel, render
from flaggerpy.apis.flagger import Canary
from flaggerpy.sandbox.promql.eval import bucket_quantile
from flaggerpy.sandbox.promql.parse import PromQLError, format_float, parse, parse_duration
from flaggerpy.sandbox.promql.server import PromQLServer, parse_time

ISTIO = ('{name}{{reporter="destination",destination_workload="{workload}",destination_workload_namespace="test",'
         'response_code="{code}"}} {value}')


class Clock:
    """A settable clock for the server."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def scraped(documents: list[str], step: float = 1.0) -> tuple[PromQLServer, Clock]:
    """A server that scraped each document ``step`` seconds apart; its clock stops at the last scrape."""
    clock = Clock()
    texts = iter(documents)
    current = {"text": ""}
    server = PromQLServer(lambda: current["text"], clock=clock)
    for index, text in enumerate(texts):
        clock.now = 1_000.0 + index * step
        current["text"] = text
        server.scrape()
    return server, clock


def value(server: PromQLServer, query: str) -> float:
    """The single value of an instant query."""
    data = server.query(query)
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    assert len(data["result"]) == 1, data
    return float(data["result"][0]["value"][1])


def istio_traffic(seconds: int, ok_per_s: int, errors_per_s: int, workload: str = "podinfo") -> list[str]:
    """Scrapes of a workload that answers ``ok_per_s`` 200s and ``errors_per_s`` 500s every second."""
    return [
        "\n".join([
            ISTIO.format(name="istio_requests_total", workload=workload, code=200, value=i * ok_per_s),
            ISTIO.format(name="istio_requests_total", workload=workload, code=500, value=i * errors_per_s),
        ])
        for i in range(seconds)
    ]


def rendered_builtin(metric: str, flavour: Flavour, interval: str = "10s") -> str:
    """A builtin check's query as the controller renders it for canary test/podinfo."""
    canary = Canary.from_dict({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                 "service": {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "gateway"}]},
                 "analysis": {"interval": "1s", "threshold": 3, "maxWeight": 50, "stepWeight": 10,
                              "metrics": [{"name": metric, "interval": interval, "thresholdRange": {"min": 1}}]}},
    })
    metric_spec = canary.spec.analysis.metrics[0]
    return render(builtin_query(metric, flavour), TemplateModel.for_metric(canary, metric_spec))


def test_builtin_success_rate_is_the_share_of_non_5xx_responses() -> None:
    server, _ = scraped(istio_traffic(20, ok_per_s=97, errors_per_s=3))
    query = rendered_builtin("request-success-rate", Flavour.ISTIO)
    assert value(server, query) == pytest.approx(97.0)


def test_builtin_duration_is_the_p99_interpolated_in_its_bucket() -> None:
    docs = []
    for i in range(15):
        lines = [
            f'istio_request_duration_milliseconds_bucket{{reporter="destination",destination_workload="podinfo",'
            f'destination_workload_namespace="test",le="{le}"}} {i * count}'
            for le, count in (("10", 50), ("100", 90), ("500", 100), ("+Inf", 100))
        ]
        docs.append("\n".join(lines))
    server, _ = scraped(docs)
    query = rendered_builtin("request-duration", Flavour.ISTIO)
    # 99% of 100 requests/s is rank 99, 9/10 of the way through the (100, 500] bucket.
    assert value(server, query) == pytest.approx(460.0)


def test_envoy_error_rate_and_latency_in_the_shape_of_gateway_tutorial_templates() -> None:
    cluster = 'envoy_cluster_name="test_podinfo-canary_9898"'
    docs = []
    for i in range(15):
        lines = [
            f'envoy_cluster_upstream_rq{{{cluster},envoy_response_code="200"}} {i * 95}',
            f'envoy_cluster_upstream_rq{{{cluster},envoy_response_code="503"}} {i * 5}',
            *(f'envoy_cluster_upstream_rq_time_bucket{{{cluster},le="{le}"}} {i * n}'
              for le, n in (("5", 40), ("25", 80), ("100", 100), ("+Inf", 100))),
        ]
        docs.append("\n".join(lines))
    server, _ = scraped(docs)
    selector = 'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"'
    error_rate = (f'100 - sum(rate(envoy_cluster_upstream_rq{{{selector}, envoy_response_code!~"5.*"}}[10s])) '
                  f"/ sum(rate(envoy_cluster_upstream_rq{{{selector}}}[10s])) * 100")
    assert value(server, error_rate) == pytest.approx(5.0)
    latency = f"histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{{{selector}}}[10s])) by (le))"
    # Rank 99 of 100 lies 19/20 of the way through the (25, 100] bucket.
    assert value(server, latency) == pytest.approx(96.25)
    assert value(server, latency + " / 1000") == pytest.approx(0.09625)


def test_rate_extrapolates_to_the_window_edges_like_prometheus() -> None:
    # Samples at t=0..9 counting 10/s; a 10s window ending at t=9 holds all ten and is extrapolated by 1s.
    server, _ = scraped([f"c_total {1000 + i * 10}" for i in range(10)])
    assert value(server, "rate(c_total[10s])") == pytest.approx(10.0)
    # increase() over 5s sees 5 samples spanning 4s, extrapolated to the full 5s.
    assert value(server, "increase(c_total[5s])") == pytest.approx(50.0)
    assert value(server, "irate(c_total[5s])") == pytest.approx(10.0)


def test_rate_does_not_extrapolate_a_new_counter_below_zero() -> None:
    server, _ = scraped([f"c_total {i * 10}" for i in range(10)])
    assert value(server, "increase(c_total[10s])") == pytest.approx(90.0)


def test_rate_counts_across_a_counter_reset() -> None:
    server, _ = scraped([f"c_total {v}" for v in (0, 10, 20, 5, 15, 25)])
    assert value(server, "increase(c_total[10s])") > 25
    assert value(server, "irate(c_total[10s])") == pytest.approx(10.0)


def test_a_series_missing_from_a_scrape_goes_stale_at_once() -> None:
    server, _ = scraped(['up{a="1"} 1\nup{a="2"} 1', 'up{a="1"} 1'])
    assert [r["metric"]["a"] for r in server.query("up")["result"]] == ["1"]


def test_aggregations_group_by_and_without() -> None:
    doc = 'x{a="1",b="p"} 1\nx{a="1",b="q"} 2\nx{a="2",b="p"} 4'
    server, _ = scraped([doc])
    by_a = {r["metric"].get("a"): float(r["value"][1]) for r in server.query("sum by (a) (x)")["result"]}
    assert by_a == {"1": 3.0, "2": 4.0}
    assert value(server, "count(x)") == 3
    assert value(server, "max(x)") == 4
    assert value(server, "min(x)") == 1
    assert value(server, "avg(x)") == pytest.approx(7 / 3)
    assert {r["metric"].get("a") for r in server.query("SUM BY (a) (x)")["result"]} == {"1", "2"}
    without = server.query("sum without (b, instance, job) (x)")["result"]
    assert sorted(r["metric"]["a"] for r in without) == ["1", "2"]


def test_binary_operations_match_one_to_one_and_drop_the_name() -> None:
    server, _ = scraped(['ok{svc="a"} 90\nok{svc="b"} 50\nall{svc="a"} 100\nall{svc="b"} 100'])
    result = server.query("ok / all * 100")["result"]
    assert {r["metric"]["svc"]: float(r["value"][1]) for r in result} == {"a": 90.0, "b": 50.0}
    assert all("__name__" not in r["metric"] for r in result)
    assert [r["metric"]["svc"] for r in server.query("ok / all < 0.6")["result"]] == ["b"]
    assert [float(r["value"][1]) for r in server.query('ok{svc="a"} > bool 95')["result"]] == [0.0]
    assert value(server, 'sum(ok) / on() sum(all)') == pytest.approx(0.7)
    merged = server.query('ok{svc="a"} or all')["result"]
    assert sorted((r["metric"]["__name__"], r["metric"]["svc"]) for r in merged) == [("all", "b"), ("ok", "a")]


def test_scalar_arithmetic_and_literals() -> None:
    server, _ = scraped([""])
    assert value(server, "2 ^ 3 ^ 2") == 512
    assert value(server, "-2 ^ 2") == -4
    assert value(server, "(1 + 2) * 3 - 10 / 4") == pytest.approx(6.5)
    assert value(server, "1 > bool 0") == 1
    assert value(server, "0x10 + 1e1") == 26
    assert math.isinf(value(server, "1 / 0"))
    assert math.isnan(value(server, "0 / 0"))


def test_empty_data_answers_an_empty_vector_not_zero() -> None:
    server, _ = scraped([""])
    query = rendered_builtin("request-success-rate", Flavour.ISTIO)
    assert server.query(query) == {"resultType": "vector", "result": []}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sum(rate(x[5m])", "unexpected end of input"),
        ("topk(3, x)", "aggregation topk() is not supported"),
        ('label_replace(x, "a", "$1", "b", "(.*)")', "function label_replace() is not supported"),
        ("no_such_fn(x)", "unknown function with name 'no_such_fn'"),
        ("rate(x[5m:1m])", "subqueries are not supported"),
        ("x * on(a) group_left y", "group_left (many-to-one matching) is not supported"),
        ("rate(x)", "expected type range vector"),
        ("1 > 2", "comparisons between scalars must use BOOL modifier"),
        ('{a=""}', "at least one non-empty matcher"),
        ('x{a=~"("}', "invalid regular expression"),
        ("x @ 100", "the @ modifier is not supported"),
        ("", "no expression found"),
        ("x[", "unexpected end of input in range selector"),
    ],
)
def test_unsupported_or_invalid_queries_are_refused_with_the_problem(query: str, problem: str) -> None:
    server, _ = scraped([""])
    with pytest.raises(PromQLError) as caught:
        server.query(query)
    assert problem in str(caught.value)
    assert caught.value.kind == "bad_data"


def test_many_to_many_matching_is_an_execution_error() -> None:
    server, _ = scraped(['x{a="1",b="1"} 1\nx{a="1",b="2"} 1\ny{a="1"} 1'])
    with pytest.raises(PromQLError) as caught:
        server.query("y / on(a) x")
    assert caught.value.kind == "execution"


def test_histogram_quantile_edge_cases() -> None:
    assert bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) != bucket_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)])
    assert math.isnan(bucket_quantile(0.5, [(1.0, 5.0), (2.0, 10.0)]))  # no +Inf bucket
    assert bucket_quantile(1.5, [(1.0, 1.0), (math.inf, 1.0)]) == math.inf
    assert bucket_quantile(0.99, [(1.0, 1.0), (2.0, 1.0), (math.inf, 10.0)]) == 2.0  # rank in +Inf: highest bound
    assert bucket_quantile(0.5, [(10.0, 10.0), (math.inf, 10.0)]) == pytest.approx(5.0)


def test_helpers_parse_durations_times_and_format_values() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration("5x")
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time("2023-11-14T22:13:20Z") == 1700000000
    with pytest.raises(ValueError, match="valid timestamp"):
        parse_time("yesterday")
    assert [format_float(v) for v in (1.0, 0.5, 1e-05, 1.5e22, math.nan, -math.inf)] == [
        "1", "0.5", "0.00001", "15000000000000000000000", "NaN", "-Inf"]
    assert parse("x offset 1m") is not None
