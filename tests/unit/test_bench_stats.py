"""The benchmark's figures (hack/bench_stats.py): percentiles, classification of status and route versions, the
bench's own requests, where the controller's writes went, and growth between runs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

HACK = Path(__file__).resolve().parents[2] / "hack"
sys.path.insert(0, str(HACK))

import bench_stats as bs  # noqa: E402


def test_percentile_is_nearest_rank_and_none_without_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bs.percentile(values, 0.5) == 50.0
    assert bs.percentile(values, 0.99) == 99.0
    assert bs.percentile(values, 1.0) == 100.0
    assert bs.percentile([3.0], 0.99) == 3.0
    assert bs.percentile([], 0.5) is None


def test_summary_reports_milliseconds_and_sample_count() -> None:
    assert bs.summary_ms([0.010, 0.020, 0.030]) == {"p50_ms": 20.0, "p99_ms": 30.0, "max_ms": 30.0, "samples": 3}
    assert bs.summary_ms([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0}


def test_parse_time_accepts_kubernetes_timestamps_only() -> None:
    assert bs.parse_time("2026-11-22T05:00:00Z") == datetime(2026, 11, 22, 5, tzinfo=UTC).timestamp()
    assert bs.parse_time("") is None
    assert bs.parse_time(None) is None
    assert bs.parse_time("yesterday") is None


@pytest.mark.parametrize(("before", "after", "kind"), [
    (None, ("Progressing", 0, 0), bs.PHASE_CHANGE),
    (("Initialized", 0, 0), ("Progressing", 0, 0), bs.PHASE_CHANGE),
    (("Progressing", 0, 0), ("Progressing", 10, 0), bs.WEIGHT_STEP),
    (("Progressing", 10, 0), ("Progressing", 20, 0), bs.WEIGHT_STEP),
    (("Progressing", 0, 1), ("Progressing", 0, 2), bs.WEIGHT_STEP),
    (("Progressing", 50, 0), ("Promoting", 50, 0), bs.PHASE_CHANGE),
    (("Progressing", 10, 0), ("Failed", 0, 0), bs.PHASE_CHANGE),
    (("Progressing", 10, 0), ("Progressing", 10, 0), bs.NO_TRANSITION),
])
def test_status_versions_are_classified_by_what_moved(before: bs.State | None, after: bs.State, kind: str) -> None:
    assert bs.classify_status(before, after) == kind


def test_status_state_reads_missing_fields_as_zero() -> None:
    assert bs.status_state({}) == ("", 0, 0)
    assert bs.status_state({"phase": "Progressing", "canaryWeight": 30, "iterations": 2}) == ("Progressing", 30, 2)


@pytest.mark.parametrize(("before", "after", "kind"), [
    (None, (1, 0), bs.ROUTE_OTHER),
    ((1, 0), (2, 10), bs.ROUTE_STEP),
    ((2, 10), (3, 20), bs.ROUTE_STEP),
    ((3, 50), (4, 0), bs.ROUTE_TO_PRIMARY),
    ((4, 0), (5, 0), bs.ROUTE_OTHER),
    ((5, 0), (5, 0), None),  # the Gateway wrote the route's status: not a controller write
])
def test_route_versions_are_classified_by_generation_and_canary_weight(
        before: tuple[int, int] | None, after: tuple[int, int], kind: str | None) -> None:
    assert bs.classify_route(before, after) == kind


@pytest.mark.parametrize(("before", "after", "primary", "kind"), [
    (None, (1, 1, "v1"), False, None),
    ((1, 1, "v1"), (1, 1, "v1"), False, None),  # the workload controller wrote status
    ((1, 0, "v1"), (2, 0, "v2"), False, bs.TARGET_EDIT),
    ((2, 0, "v2"), (3, 1, "v2"), False, bs.SCALE_UP),
    ((3, 1, "v2"), (4, 0, "v2"), False, bs.SCALE_DOWN),
    ((1, 1, "v1"), (2, 1, "v2"), True, bs.PRIMARY_COPY),
    ((2, 1, "v2"), (3, 2, "v2"), True, bs.DEPLOYMENT_OTHER),
])
def test_deployment_versions_are_classified_by_what_the_release_did(
        before: bs.DeploymentState | None, after: bs.DeploymentState, primary: bool, kind: str | None) -> None:
    assert bs.classify_deployment(before, after, primary) == kind


@pytest.mark.parametrize(("method", "path", "key"), [
    ("PATCH", "/apis/apps/v1/namespaces/bench/deployments/app-1", ("patch", "deployments.apps")),
    ("PUT", "/apis/flagger.app/v1beta1/namespaces/bench/canaries/app-1/status",
     ("update", "canaries.flagger.app/status")),
    ("POST", "/apis/flagger.app/v1beta1/namespaces/bench/canaries", ("create", "canaries.flagger.app")),
    ("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/bench/httproutes",
     ("list", "httproutes.gateway.networking.k8s.io")),
    ("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/bench/httproutes?watch=true&resourceVersion=5",
     ("watch", "httproutes.gateway.networking.k8s.io")),
    ("GET", "/api/v1/namespaces/bench/services/app-1", ("get", "services")),
    ("DELETE", "/api/v1/namespaces/bench/events", ("deletecollection", "events")),
    ("GET", "/api/v1/namespaces/bench", ("get", "namespaces")),
    ("DELETE", "/sandbox/counters", None),
    ("GET", "/apis", None),
])
def test_request_keys_match_the_sandbox_counter_names(method: str, path: str, key: tuple[str, str] | None) -> None:
    assert bs.request_key(method, path) == key


def test_subtract_removes_the_bench_own_requests_and_empty_entries() -> None:
    counters = {"deployments.apps": {"patch": 12, "update": 3}, "canaries.flagger.app": {"list": 1, "watch": 1}}
    own = {("patch", "deployments.apps"): 10, ("list", "canaries.flagger.app"): 1,
           ("watch", "canaries.flagger.app"): 1, ("get", "services"): 4}
    assert bs.subtract(counters, own) == {"deployments.apps": {"patch": 2, "update": 3}}


CALLS = {
    bs.CANARY_STATUS: {"update": 40},
    bs.HTTPROUTES: {"patch": 14, "get": 2},
    "deployments.apps": {"patch": 4, "update": 2},
    "services": {"create": 0},
    bs.EVENTS: {"create": 25},
    bs.LEASES: {"get": 10, "update": 5},
}
STATUSES = {bs.WEIGHT_STEP: 10, bs.PHASE_CHANGE: 8, bs.NO_TRANSITION: 2}  # 20 seen of 40 written: 20 no-ops
ROUTES = {bs.ROUTE_STEP: 10, bs.ROUTE_TO_PRIMARY: 2}  # 12 seen of 14 written


def test_a_weight_step_costs_its_status_and_its_route() -> None:
    writes = bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20, seconds=10.0)
    assert writes["weight_steps"] == 10
    assert writes["per_weight_step"] == {"status": 1.0, "route": 1.0, "writes": 2.0}


def test_everything_else_a_release_writes_is_counted_per_release() -> None:
    release = bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20, seconds=10.0)["per_release"]
    assert release["status_phase_changes"] == 4.0
    assert release["status_without_transition"] == 1.0
    assert release["route_to_primary"] == 1.0
    assert release["deployments.apps"] == 3.0
    assert release["without_visible_change"] == {bs.CANARY_STATUS: 10.0, bs.HTTPROUTES: 1.0}
    assert "services" not in release


def test_write_accounting_adds_up_to_the_counters() -> None:
    writes = bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20, seconds=10.0)
    total = sum(n for verbs in CALLS.values() for verb, n in verbs.items() if verb in bs.WRITE_VERBS)
    accounted = (writes["per_weight_step"]["writes"] * writes["weight_steps"]
                 + writes["per_release"]["writes"] * writes["releases"]
                 + writes["events"]["per_release"] * writes["releases"]
                 + writes["leases"]["writes_per_s"] * 10.0)
    assert accounted == pytest.approx(total)


def test_deployment_writes_are_broken_down_by_what_they_did() -> None:
    deployments = {bs.SCALE_UP: 2, bs.SCALE_DOWN: 1, bs.PRIMARY_COPY: 2, bs.TARGET_EDIT: 2}
    writes = bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20, seconds=10.0,
                                 deployments=deployments)
    release = writes["per_release"]
    assert release["deployments_by_kind"] == {bs.PRIMARY_COPY: 1.0, bs.SCALE_DOWN: 0.5, bs.SCALE_UP: 1.0}
    assert release["without_visible_change"][bs.DEPLOYMENTS] == 0.5
    assert release["writes"] == bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20,
                                                    seconds=10.0)["per_release"]["writes"]


def test_events_leases_and_reads_are_reported_apart() -> None:
    writes = bs.write_accounting(CALLS, STATUSES, ROUTES, releases=2, transitions=20, seconds=10.0)
    assert writes["events"] == {"per_transition": 1.25, "per_release": 12.5}
    assert writes["leases"] == {"writes_per_s": 0.5, "reads_per_s": 1.0}
    assert writes["reads_by_resource"] == {bs.HTTPROUTES: 2, bs.LEASES: 10}


def test_write_accounting_without_steps_or_releases_has_no_ratios() -> None:
    writes = bs.write_accounting({}, {}, {}, releases=0, transitions=0, seconds=0.0)
    assert writes["per_weight_step"] == {"status": None, "route": None, "writes": None}
    assert writes["per_release"]["writes"] is None


def test_per_step_keeps_the_historic_keys_and_adds_reads_by_resource() -> None:
    figures = bs.per_step(CALLS, 20)
    assert figures["writes"] == 4.5
    assert figures["writes_without_events"] == 3.25
    assert figures["reads"] == 0.6
    assert figures["reads_without_leases"] == 0.1
    assert figures["by_verb"]["update"] == 2.35
    assert figures["writes_by_resource"][bs.EVENTS] == 1.25
    assert figures["reads_by_resource"] == {bs.HTTPROUTES: 0.1, bs.LEASES: 0.5}


def test_growth_compares_every_figure_with_the_first_run() -> None:
    runs = [
        {"canaries": 100, "detection": {"p99_ms": 20.0}, "controller_cpu_s_per_step": 0.01, "ok": True,
         "rollback": {"p99_ms": 0}, "cpu": {"bench": {"cpu_ms_per_step": 1.0}}},
        {"canaries": 1000, "detection": {"p99_ms": 50.0}, "controller_cpu_s_per_step": 0.008,
         "rollback": {"p99_ms": 5}, "cpu": {"bench": {"cpu_ms_per_step": 2.0}}},
    ]
    grown = bs.growth(runs)
    assert grown["detection_p99"] == {"100": 1.0, "1000": 2.5}
    assert grown["cpu_s_per_step"] == {"100": 1.0, "1000": 0.8}
    assert grown["bench_cpu_ms_per_step"] == {"100": 1.0, "1000": 2.0}
    assert grown["rollback_p99"] == {"100": None, "1000": None}
    assert grown["step_lag_p99"] == {"100": None, "1000": None}
    assert grown["all"]["detection.p99_ms"] == {"100": 1.0, "1000": 2.5}
    assert "ok" not in grown["all"]
    assert "canaries" not in grown["all"]


def test_watch_reconnects_are_summed_by_reason_from_the_metrics_text() -> None:
    text = """# HELP flaggerpy_watch_reconnects_total Watch streams re-opened
# TYPE flaggerpy_watch_reconnects_total counter
flaggerpy_watch_reconnects_total{resource="canaries",reason="gone"} 2.0
flaggerpy_watch_reconnects_total{resource="deployments",reason="gone"} 1.0
flaggerpy_watch_reconnects_total{reason="dropped",resource="services"} 3.0
flaggerpy_watch_reconnects_created{resource="canaries",reason="gone"} 1.7e+09
flaggerpy_leader 1.0
"""
    assert bs.counter_by_label(text, "flaggerpy_watch_reconnects_total", "reason") == {"gone": 3.0, "dropped": 3.0}
    assert bs.counter_by_label("", "flaggerpy_watch_reconnects_total", "reason") == {}


def test_targets_say_which_are_met() -> None:
    run = {"detection": {"p99_ms": 49.9}, "step_lag": {"p99_ms": 100.0},
           "writes": {"per_weight_step": {"writes": 2.0}}, "api_calls_per_step": {"reads": 0.12}}
    met = {path: t["met"] for path, t in bs.targets(run).items()}
    assert met == {"detection.p99_ms": True, "step_lag.p99_ms": False, "writes.per_weight_step.writes": True,
                   "api_calls_per_step.reads": False, "controller_peak_rss_mib": None}
