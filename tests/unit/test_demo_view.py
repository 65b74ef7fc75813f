"""What the demo shows: the live dashboard and the plain lines carry the same facts."""

from __future__ import annotations

import io

from rich.console import Console

from flaggerpy.analysis.base import MetricResult
from flaggerpy.demo.view import DemoState, LiveReporter, PlainReporter, Traffic, format_value

RESULTS = [
    MetricResult("request-success-rate", 70.25, False, min=99.0, error="value 70.25 is below the minimum 99"),
    MetricResult("request-duration", 4.9, True, max=500.0),
    MetricResult("error-rate", None, False, max=1.0, error="prometheus: no values found (the query matched no series)"),
]


def _feed(reporter: LiveReporter | PlainReporter) -> None:
    reporter.stage("rolling out podinfo 6.0.2")
    reporter.phase("Progressing", 1)
    reporter.weights(80, 20)
    reporter.metrics(20, RESULTS)
    reporter.event("Warning", "Synced", "Rolling back podinfo.test failed checks threshold reached 3")
    reporter.traffic({"primary": Traffic(64.0, 0.0), "canary": Traffic(16.0, 31.2)})
    reporter.telemetry("http://127.0.0.1:41234")


def test_dashboard_shows_phase_split_checks_traffic_and_events() -> None:
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    reporter = LiveReporter(DemoState("flaggerpy demo: test", threshold=3), console)
    _feed(reporter)
    console.print(reporter.render())
    text = console.export_text()
    assert "Progressing" in text and "failed checks 1/3" in text
    assert "primary  80%" in text and "20% canary" in text
    assert "request-success-rate" in text and "(min 99)" in text and "70.25" in text
    assert "no data" in text and "fail" in text
    assert "canary:  16.0 req/s, 31.2% errors" in text
    assert "Rolling back podinfo.test failed checks threshold reached 3" in text
    assert "scrape  http://127.0.0.1:41234/metrics" in text


def test_plain_lines_say_one_change_each() -> None:
    out = io.StringIO()
    reporter = PlainReporter(DemoState("flaggerpy demo: test", threshold=3), out)
    _feed(reporter)
    reporter.weights(80, 20)  # unchanged: no new line
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "== rolling out podinfo 6.0.2",
        "phase Progressing",
        "failed checks 1/3",
        "weights primary 80% canary 20%",
        "checks at canary 20%: request-success-rate=70.25 (min 99) FAIL, request-duration=4.90 (max 500) ok, "
        "error-rate=no data (max 1) FAIL",
        "event Warning Synced: Rolling back podinfo.test failed checks threshold reached 3",
        "controller metrics at http://127.0.0.1:41234/metrics (health: /healthz, /readyz)",
    ]


def test_rounding_noise_never_shows_a_negative_zero() -> None:
    assert format_value(MetricResult("error-rate", -1.4e-14, True, max=1.0)) == "0.00"
