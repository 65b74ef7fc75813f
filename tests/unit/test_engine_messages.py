"""Flagger's Event texts for failed metric checks (pkg/controller/scheduler_metrics.go) and Go's number formats."""

from __future__ import annotations

from flaggerpy.analysis.base import MetricResult
from flaggerpy.canary import messages


def test_go_duration_prints_like_time_duration_string() -> None:
    assert [messages.go_duration(ms) for ms in (0, 500, 1500, 90_000, 0.25, 1.234567)] == [
        "0s", "500ms", "1.5s", "1m30s", "250µs", "1.234567ms",
    ]


def test_builtin_metric_halts_use_flaggers_words() -> None:
    rate = MetricResult("request-success-rate", 42.0, False, min=99.0)
    duration = MetricResult("request-duration", 1500.0, False, max=500.0)
    assert messages.metric_halt("podinfo.test", "podinfo.test", "gatewayapi:v1", rate, True) == (
        "Halt podinfo.test advancement success rate 42.00% < 99%")
    assert messages.metric_halt("podinfo.test", "podinfo.test", "gatewayapi:v1", duration, True) == (
        "Halt podinfo.test advancement request duration 1.5s > 500ms")


def test_custom_metric_halts_and_missing_values() -> None:
    errors = MetricResult("error-rate", 3.25, False, max=1.0)
    assert messages.metric_halt("podinfo.test", "podinfo.test", "p", errors, False) == (
        "Halt podinfo.test advancement error-rate 3.25 > 1")
    empty = MetricResult("error-rate", None, False, error="no values found", no_data=True)
    assert messages.metric_halt("podinfo.test", "podinfo.test", "p", empty, False) == (
        "Halt advancement no values found for custom metric: error-rate: no values found")
    broken = MetricResult("error-rate", None, False, error="status 500")
    assert messages.metric_halt("podinfo.test", "podinfo.test", "p", broken, False) == (
        "Metric query failed for error-rate: status 500")


def test_hook_passed_texts() -> None:
    assert messages.hook_passed("confirm-traffic-increase", "gate") == "Confirm-traffic-increase check gate passed"
    assert messages.hook_passed("pre-rollout", "smoke") == "Pre-rollout check smoke passed"


def test_bounds_print_every_digit_as_gos_percent_v() -> None:
    assert [messages.go_number(v) for v in (99.0, 99.5, 99.12345, 0.0001, 1e-05, 1e21)] == [
        "99", "99.5", "99.12345", "0.0001", "1e-05", "1e+21"]
