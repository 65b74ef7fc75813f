"""Junk never crashes the analysis: every parser and the template renderer either answer or raise their own
typed error (property tests over mutated real answers and arbitrary text)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.analysis.providers import (
    ProviderError,
    cloudwatch,
    datadog,
    dynatrace,
    graphite,
    influxdb,
    newrelic,
    prometheus,
    splunk,
    stackdriver,
)
from flaggerpy.analysis.templates import TemplateError, TemplateModel, render

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def mutated(example: Any) -> st.SearchStrategy[Any]:
    """``example`` with any subtree possibly replaced by arbitrary JSON (so the parser gets past its first checks)."""
    if isinstance(example, dict):
        kept: st.SearchStrategy[Any] = st.fixed_dictionaries({k: mutated(v) for k, v in example.items()})
    elif isinstance(example, list) and example:
        kept = st.tuples(*(mutated(v) for v in example)).map(list)
    else:
        kept = st.just(example)
    return st.one_of(kept, kept, kept, JSON)


VALID: dict[str, tuple[Callable[[Any, bytes, str], float], Any]] = {
    "prometheus": (
        prometheus.parse_result,
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}},
    ),
    "datadog": (datadog.parse_response, {"status": "ok", "series": [{"pointlist": [[1, 2.0], [2, None]]}]}),
    "newrelic": (newrelic.parse_response, {"results": [{"result": 1.5}]}),
    "graphite": (graphite.parse_response, [{"target": "t", "datapoints": [[1.0, 1], [None, 2], ["3", 3]]}]),
    "dynatrace": (dynatrace.parse_response, {"result": [{"data": [{"timestamps": [1], "values": [None, 2.5]}]}]}),
    "stackdriver": (
        stackdriver.parse_response,
        {"timeSeriesData": [{"pointData": [{"values": [{"doubleValue": 0.5}, {"int64Value": "3"}]}]}]},
    ),
}


def _accepts(parse: Callable[[Any, bytes, str], float], payload: Any) -> None:
    try:
        value = parse(payload, json.dumps(payload).encode(), "p")
    except ProviderError:
        return
    assert isinstance(value, float) and not math.isnan(value)


def _never_crashes(provider: str) -> Callable[[], None]:
    parse, example = VALID[provider]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=mutated(example))
    def test(payload: Any) -> None:
        _accepts(parse, payload)

    test.__doc__ = f"The {provider} answer parser never crashes on junk."
    return test  # type: ignore[no-any-return]


test_prometheus_parser_never_crashes = _never_crashes("prometheus")
test_datadog_parser_never_crashes = _never_crashes("datadog")
test_newrelic_parser_never_crashes = _never_crashes("newrelic")
test_graphite_parser_never_crashes = _never_crashes("graphite")
test_dynatrace_parser_never_crashes = _never_crashes("dynatrace")
test_stackdriver_parser_never_crashes = _never_crashes("stackdriver")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(',#"\r\n_valueresult0123.error-datatypedouble ')), max_size=120))
def test_influx_csv_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ProviderError):
        influxdb.parse_annotated_csv(text.encode())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.sampled_from(["<a/>", "<GetMetricDataResponse><GetMetricDataResult/></x>"]))
def test_cloudwatch_xml_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ProviderError):
        cloudwatch.parse_response(text.encode())


SSE_LINES = st.sampled_from(
    [
        "event: data",
        "event: error",
        "event: control-message",
        'data: {"data": [{"tsId": "a", "value": 1}]}',
        'data: {"data": [{"tsId": "b", "value": null}]}',
        'data: {"data": "x"}',
        'data: {"event": "CHANNEL_ABORT"}',
        "data: [1, 2]",
        "data: {",
        "data: }",
        "",
        ": comment",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SSE_LINES, max_size=12))
def test_signalflow_stream_parser_never_crashes(lines: list[str]) -> None:
    with contextlib.suppress(ProviderError):
        splunk.last_value(splunk.parse_events("\n".join(lines)))


MODEL = TemplateModel("n", "ns", "t", "s", "i", "r", "1m", {"k": "v"})


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}%#-/*. |()'\"nametvriblsk_[]1")), max_size=40))
def test_rendering_junk_answers_text_or_a_template_error(query: str) -> None:
    with contextlib.suppress(TemplateError):
        assert isinstance(render(query, MODEL), str)
