"""What ``get canaries`` and ``status`` show: progress through the steps, latest Event, plain tables, timeline."""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from flaggerpy.ctl.render import canaries_plain, canaries_rich, plain_table
from flaggerpy.ctl.status import build_report, report_plain, report_rich
from flaggerpy.ctl.view import MetricValue, current_release, events_for, row, steps_of


def canary(status: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None,
           name: str = "podinfo", namespace: str = "test") -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898, "gatewayRefs": [{"name": "gw"}]},
            "analysis": analysis or {"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 10},
        },
        "status": status or {},
    }


def event(message: str, when: str, count: int = 1, name: str = "podinfo", type_: str = "Normal") -> dict[str, Any]:
    return {"metadata": {"name": f"{name}.{when}", "namespace": "test"}, "type": type_, "reason": "Synced",
            "message": message, "count": count, "lastTimestamp": when,
            "involvedObject": {"kind": "Canary", "name": name, "namespace": "test"}}


@pytest.mark.parametrize(("phase", "weight", "done"), [
    ("Initialized", 0, 0), ("Progressing", 10, 1), ("Progressing", 30, 3), ("Promoting", 50, 5),
    ("Succeeded", 0, 5),
])
def test_progress_of_a_weighted_canary_counts_weights(phase: str, weight: int, done: int) -> None:
    r = row(canary({"phase": phase, "canaryWeight": weight}), [])
    assert r.progress is not None
    assert (r.progress.done, r.progress.total) == (done, 5)


def test_progress_of_ab_and_blue_green_counts_iterations() -> None:
    analysis = {"interval": "1m", "iterations": 10, "match": [{"headers": {"x": {"exact": "1"}}}]}
    r = row(canary({"phase": "Progressing", "iterations": 4, "canaryWeight": 100}, analysis), [])
    assert r.progress is not None and (r.progress.done, r.progress.total, r.progress.unit) == (4, 10, "iteration")
    assert r.progress.bar() == "[####------] 4/10"


def test_row_shows_the_latest_event_and_failed_checks() -> None:
    events = [event("Advance podinfo.test canary weight 20", "2026-11-22T01:02:00Z"),
              event("New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z"),
              event("other canary", "2026-11-22T01:03:00Z", name="other")]
    r = row(canary({"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1}), events)
    assert r.message == "Advance podinfo.test canary weight 20"
    assert (r.failed_checks, r.threshold) == (1, 2)


def test_invalid_spec_still_shows_a_row() -> None:
    obj = canary({"phase": "Progressing", "canaryWeight": 10,
                  "conditions": [{"type": "Promoted", "status": "False", "reason": "InvalidSpec",
                                  "message": "spec.analysis.stepWeight: must be > 0"}]})
    obj["spec"]["analysis"]["stepWeight"] = -1
    r = row(obj, [])
    assert r.progress is None and r.threshold is None
    assert r.message == "spec.analysis.stepWeight: must be > 0"


def test_plain_table_is_aligned_and_stable() -> None:
    rows = [row(canary({"phase": "Progressing", "canaryWeight": 20, "lastTransitionTime": "2026-11-22T01:02:03Z"}),
                []),
            row(canary({"phase": "Succeeded"}, name="b", namespace="prod"), [])]
    text = canaries_plain(sorted(rows, key=lambda r: (r.namespace, r.name)), all_namespaces=True)
    lines = text.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "PHASE", "WEIGHT", "SUSPENDED", "FAILED", "PROGRESS",
                                "LASTTRANSITION", "MESSAGE"]
    assert lines[1].split()[:4] == ["prod", "b", "Succeeded", "0"]
    assert "[####------] 2/5" in lines[2] and "2026-11-22T01:02:03Z" in lines[2]
    # Columns start at the same offset on every line.
    assert lines[1].index("Succeeded") == lines[2].index("Progressing") == lines[0].index("PHASE")


def test_plain_table_pads_every_column_but_the_last() -> None:
    assert plain_table(("A", "BB"), [["xxx", "y"]]) == "A     BB\nxxx   y\n"


def test_current_release_starts_at_the_last_new_revision() -> None:
    lines = events_for([
        event("New revision detected! Scaling up podinfo.test", "2026-11-22T00:00:00Z"),
        event("Promotion completed! Scaling down podinfo.test", "2026-11-22T00:10:00Z"),
        event("New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z"),
        event("Advance podinfo.test canary weight 10", "2026-11-22T01:01:00Z", count=3),
    ], "test", "podinfo")
    current = current_release(lines)
    assert [e.message for e in current] == ["New revision detected! Scaling up podinfo.test",
                                           "Advance podinfo.test canary weight 10"]
    assert current[-1].count == 3


def test_steps_group_metric_history_by_step() -> None:
    history = [
        {"iteration": 0, "weight": 10, "name": "error-rate", "value": 0.1, "passed": True,
         "time": "2026-11-22T01:01:00Z"},
        {"iteration": 0, "weight": 10, "name": "latency", "value": 120, "passed": True,
         "time": "2026-11-22T01:01:00Z"},
        {"iteration": 0, "weight": 20, "name": "error-rate", "value": 5.0, "passed": False,
         "time": "2026-11-22T01:02:00Z"},
        {"iteration": 0, "weight": 20, "name": "latency", "passed": False, "time": "2026-11-22T01:02:00Z"},
    ]
    steps = steps_of({"metricHistory": history})
    assert [(s.weight, len(s.metrics)) for s in steps] == [(10, 2), (20, 2)]
    assert steps[1].metrics[1] == MetricValue("latency", None, False)


def test_status_report_shows_the_timeline() -> None:
    status = {
        "phase": "Progressing", "canaryWeight": 20, "failedChecks": 1, "lastTransitionTime": "2026-11-22T01:02:00Z",
        "lastAppliedSpec": "abc", "lastPromotedSpec": "def",
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                        "message": "New revision detected, progressing canary analysis.",
                        "lastTransitionTime": "2026-11-22T01:00:00Z"}],
        "metricHistory": [
            {"iteration": 0, "weight": 5, "name": "error-rate", "value": 0.0, "passed": True,
             "time": "2026-11-22T00:30:00Z"},
            {"iteration": 0, "weight": 10, "name": "error-rate", "value": 0.5, "passed": True,
             "time": "2026-11-22T01:01:00Z"},
            {"iteration": 0, "weight": 20, "name": "error-rate", "value": 3.0, "passed": False,
             "time": "2026-11-22T01:02:00Z"},
        ],
    }
    events = [event("New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z"),
              event("Advance podinfo.test canary weight 10", "2026-11-22T01:00:30Z"),
              event("Halt podinfo.test advancement error-rate 3 outside [, 1]", "2026-11-22T01:02:00Z", count=2,
                    type_="Warning")]
    text = report_plain(build_report(canary(status), events))
    assert "Phase:" in text and "Progressing" in text
    assert "Failed checks:" in text and "1/2" in text
    assert "applied abc, promoted def" in text
    steps = text.split("Analysis steps:")[1].split("Events:")[0]
    # Only the current release's steps: the 5% sample predates the release's first Event.
    assert "5%" not in steps
    assert "error-rate=0.5 ok" in steps and "error-rate=3 FAIL" in steps
    events_part = text.split("Events:")[1]
    assert events_part.index("New revision") < events_part.index("Advance") < events_part.index("Halt")
    assert "Warning" in events_part and "   2   " in events_part


def test_status_report_of_an_invalid_canary_does_not_crash() -> None:
    obj = canary({"phase": "Progressing"})
    broken = copy.deepcopy(obj)
    broken["spec"]["service"] = "not an object"
    text = report_plain(build_report(broken, []))
    assert "invalid" in text and "<none>" in text


def test_rich_views_keep_brackets_in_messages_and_show_progress() -> None:
    message = "Halt podinfo.test advancement error-rate 3 outside [, 1]"
    obj = canary({"phase": "Progressing", "canaryWeight": 20, "lastTransitionTime": "2026-11-22T01:00:00Z"})
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    console.print(canaries_rich([row(obj, [event(message, "2026-11-22T01:00:00Z")])], False,
                                datetime(2026, 11, 22, 1, 5, tzinfo=UTC)))
    report_rich(build_report(obj, [event(message, "2026-11-22T01:00:00Z")]), console)
    text = out.getvalue()
    assert text.count(message) == 2
    assert "2/5" in text and "5m ago" in text
    assert "[########------------] 2/5 weights" in text


def test_garbage_in_status_does_not_crash_the_views() -> None:
    obj = canary({"phase": 7, "canaryWeight": "lots", "failedChecks": None, "iterations": True,
                  "metricHistory": [{"weight": "x", "value": "nan?", "name": None}],
                  "conditions": [{"type": "Promoted"}]})
    r = row(obj, [{"involvedObject": {"kind": "Canary", "name": "podinfo", "namespace": "test"}, "count": "many"}])
    assert (r.weight, r.failed_checks) == (0, 0)
    assert "Analysis steps" in report_plain(build_report(obj, []))


LONG_MESSAGE = "Halt podinfo.test advancement error-rate 3.2 outside [, 1] " + "and more " * 10


def draw(width: int, all_namespaces: bool, message: str = LONG_MESSAGE) -> list[str]:
    """``get canaries`` of one progressing canary drawn on a terminal ``width`` columns wide, line by line."""
    obj = canary({"phase": "Progressing", "canaryWeight": 30, "failedChecks": 1,
                  "lastTransitionTime": "2026-11-22T01:00:00Z"})
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    console.print(canaries_rich([row(obj, [event(message, "2026-11-22T01:00:00Z")])], all_namespaces,
                                datetime(2026, 11, 22, 1, 5, tzinfo=UTC), console.width))
    return [line.rstrip() for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("width", [40, 60, 120])
@pytest.mark.parametrize("all_namespaces", [False, True])
def test_narrow_terminals_keep_name_phase_weight_and_move_the_rest_under_the_row(
    width: int, all_namespaces: bool
) -> None:
    lines = draw(width, all_namespaces)
    assert all(len(line) <= width for line in lines), lines
    essentials = ["NAMESPACE", "NAME", "PHASE", "WEIGHT"] if all_namespaces else ["NAME", "PHASE", "WEIGHT"]
    values = ["test", "podinfo", "Progressing", "30%"] if all_namespaces else ["podinfo", "Progressing", "30%"]
    assert lines[0].split()[:len(essentials)] == essentials
    assert lines[1].split()[:len(values)] == values
    text = " ".join(" ".join(line.split()) for line in lines)
    # Every field is still on screen, as a column or under the row.
    assert "1/2" in text and "3/5" in text and "5m ago" in text
    if width == 120:
        # Wide enough: one line per canary, the message cut at the edge.
        assert lines[0].split()[-1] == "MESSAGE" and len(lines) == 2
        assert lines[1].startswith(" ".join(values[:1])) and lines[1].endswith("…") and len(lines[1]) == width
    else:
        # Narrow: the whole message, wrapped, on indented lines under the row.
        assert "MESSAGE" not in lines[0]
        assert all(line.startswith("  ") for line in lines[2:])
        assert " ".join(LONG_MESSAGE.split()) in text


def test_a_wide_terminal_shows_every_column_in_a_row() -> None:
    lines = draw(200, True, "Advance podinfo.test canary weight 30")
    assert lines[0].split() == ["NAMESPACE", "NAME", "PHASE", "WEIGHT", "FAILED", "PROGRESS", "SINCE", "MESSAGE"]
    assert lines[1].split()[:5] == ["test", "podinfo", "Progressing", "30%", "1/2"]
    assert lines[1].endswith("5m ago  Advance podinfo.test canary weight 30")


def test_a_narrow_terminal_without_a_message_adds_no_empty_line() -> None:
    lines = draw(70, False, "")
    assert len(lines) == 2 and lines[1].split() == ["podinfo", "Progressing", "30%", "1/2", "━━━━━━", "3/5",
                                                    "5m", "ago"]


def test_status_tells_aborted_and_superseded_attempts_from_the_current_one() -> None:
    from flaggerpy.ctl.status import build_report, report_plain

    events = [
        event("New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z"),
        event("Rolling back podinfo.test manual abort requested (request a1)", "2026-11-22T01:01:00Z",
              type_="Warning"),
        event("Canary failed! Scaling down podinfo.test", "2026-11-22T01:01:01Z", type_="Warning"),
        event("Manual retry of podinfo.test requested (request r1): re-running the analysis", "2026-11-22T01:02:00Z"),
        event("Advance podinfo.test canary weight 10", "2026-11-22T01:02:30Z"),
        event("New revision detected! Restarting analysis for podinfo.test", "2026-11-22T01:03:00Z"),
        event("Advance podinfo.test canary weight 10", "2026-11-22T01:03:30Z", name="podinfo"),
    ]
    text = report_plain(build_report(canary({"phase": "Progressing", "canaryWeight": 10}), events))
    assert "Attempt:" in text and "3 of this release" in text
    earlier = text.split("Earlier attempts of this release (retried, aborted or restarted):\n")[1].splitlines()
    assert earlier[1].split()[0] == "1" and earlier[1].endswith(
        "aborted: Rolling back podinfo.test manual abort requested (request a1)")
    assert earlier[2].split()[0] == "2" and earlier[2].endswith(
        "superseded by a new revision (last: Advance podinfo.test canary weight 10)")
    current = text.split("Events of the current attempt:\n")[1].split("\n\n")[0]
    assert "Restarting analysis" in current and "Manual retry" not in current
