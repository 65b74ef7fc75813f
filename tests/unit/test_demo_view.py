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
    # Glyphs, not only colours, tell the sides apart: 40 of 50 cells primary, 10 canary.
    assert "primary █  80% " + "█" * 40 + "░" * 10 + "  20% canary ░" in text
    assert "request-success-rate" in text and "(min 99)" in text and "70.25" in text
    assert "no data" in text and "fail" in text
    assert "measured over the 1.0s at these weights: " in text and "canary:  16.0 req/s, 31.2% errors" in text
    assert "Rolling back podinfo.test failed checks threshold reached 3" in text
    assert "scrape  http://127.0.0.1:41234/metrics" in text


def test_each_release_gets_a_block_with_its_image_and_outcome() -> None:
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    reporter = LiveReporter(DemoState("flaggerpy demo: test", threshold=3), console)
    reporter.release("podinfo:6.0.1")
    reporter.event("Normal", "Synced", "Initialization done! podinfo.test")
    reporter.outcome("Initialized: the primary serves all traffic")
    reporter.release("podinfo:6.0.2")
    reporter.metrics(10, RESULTS)
    reporter.outcome("Failed: aborted and rolled back")
    reporter.release("podinfo:6.0.3")
    reporter.event("Normal", "Synced", "New revision detected! Scaling up podinfo.test")
    console.print(reporter.render())
    text = console.export_text()
    first, second, third = (text.index(t) for t in ("initial version: podinfo:6.0.1 → Initialized",
                                                     "release 1: podinfo:6.0.2 → Failed: aborted and rolled back",
                                                     "release 2: podinfo:6.0.3 → in progress"))
    assert first < text.index("Initialization done!") < second < text.index("1 analysis step(s), 1 failed") < third
    assert text.index("New revision detected!") > third

    out = io.StringIO()
    plain = PlainReporter(DemoState("flaggerpy demo: test", threshold=3), out)
    plain.release("podinfo:6.0.1")
    plain.release("podinfo:6.0.2")
    plain.outcome("Succeeded: promoted")
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "== initial version: podinfo:6.0.1", "== release 1: podinfo:6.0.2", "== release 1: podinfo:6.0.2: Succeeded: "
        "promoted"]


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


def test_the_dashboard_address_is_in_the_header_and_a_timed_plain_line() -> None:
    url = "http://127.0.0.1:41235/#/canary/test/podinfo"
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    live = LiveReporter(DemoState("flaggerpy demo: test", threshold=3), console)
    live.dashboard(url)
    console.print(live.render())
    assert f"web     {url}" in console.export_text()
    out = io.StringIO()
    PlainReporter(DemoState("flaggerpy demo: test", threshold=3), out).dashboard(url)
    assert out.getvalue().endswith(f"s] dashboard of this release: {url}\n")
