"""hack/bench.py's pure parts: what the bench's watches make of a release (transitions, detection, steps,
rollback), per-process CPU accounting, timeouts that grow with N, and its command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

HACK = Path(__file__).resolve().parents[2] / "hack"
sys.path.insert(0, str(HACK))

import bench  # noqa: E402
import bench_stats as bs  # noqa: E402
from bench_proc import Usage  # noqa: E402


def canary_event(name: str, phase: str, weight: int = 0, stamp: str = "2026-11-22T05:00:00Z",
                 halted: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "canaryWeight": weight, "iterations": 0, "lastTransitionTime": stamp}
    if halted:
        status["conditions"] = [{"type": "Halted", "status": "True", "reason": halted}]
    return {"metadata": {"name": name}, "status": status}


def route_event(name: str, generation: int, canary_weight: int) -> dict[str, Any]:
    backends = [{"name": f"{name}-primary", "weight": 100 - canary_weight},
                {"name": f"{name}-canary", "weight": canary_weight}]
    return {"metadata": {"name": name, "generation": generation}, "spec": {"rules": [{"backendRefs": backends}]}}


T0 = 1795323600.0  # 2026-11-22T05:00:00Z, the stamps' epoch


def released(tracker: bench.Tracker, name: str, failing: bool = False) -> None:
    """Feed one release (arrivals in seconds after T0): detection at 1 s, weight steps 10 and 20 (10 s apart), a
    halt, then the end."""
    tracker.on_canary("MODIFIED", canary_event(name, "Initialized"), T0)
    tracker.on_route("MODIFIED", route_event(name, 1, 0), T0)
    tracker.begin_release()
    track = tracker.tracks[name]
    track.editing, track.edited_at = True, T0 + 0.5
    tracker.on_canary("MODIFIED", canary_event(name, "Progressing"), T0 + 1.0)
    tracker.on_canary("MODIFIED", canary_event(name, "Progressing", halted="CanaryNotReady"), T0 + 1.5)
    tracker.on_canary("MODIFIED", canary_event(name, "Progressing", 10, "2026-11-22T05:00:10Z"), T0 + 10.1)
    tracker.on_route("MODIFIED", route_event(name, 2, 10), T0 + 10.1)
    tracker.on_route("MODIFIED", route_event(name, 2, 10), T0 + 10.2)  # the Gateway accepted it: status only
    if failing:
        tracker.webhook_calls[name] = T0 + 20.0
        tracker.on_canary("MODIFIED", canary_event(name, "Failed"), T0 + 20.05)
        tracker.on_route("MODIFIED", route_event(name, 3, 0), T0 + 20.05)
        return
    tracker.on_canary("MODIFIED", canary_event(name, "Progressing", 20, "2026-11-22T05:00:20.25Z"), T0 + 20.3)
    tracker.on_route("MODIFIED", route_event(name, 3, 20), T0 + 20.3)
    tracker.on_canary("MODIFIED", canary_event(name, "Promoting", 20), T0 + 30.0)
    tracker.on_canary("MODIFIED", canary_event(name, "Succeeded"), T0 + 31.0)
    tracker.on_route("MODIFIED", route_event(name, 4, 0), T0 + 31.0)


def test_tracker_classifies_a_release_and_measures_detection_and_step_lag() -> None:
    tracker = bench.Tracker({"a": False})
    released(tracker, "a")
    track = tracker.tracks["a"]
    assert track.detected_at == T0 + 1.0
    assert track.finished_at == T0 + 31.0
    assert track.transitions == {("Progressing", 0, 0), ("Progressing", 10, 0), ("Progressing", 20, 0),
                                 ("Promoting", 20, 0), ("Succeeded", 0, 0)}
    assert tracker.status_kinds == {bs.PHASE_CHANGE: 3, bs.WEIGHT_STEP: 2, bs.NO_TRANSITION: 1}
    assert tracker.route_kinds == {bs.ROUTE_STEP: 2, bs.ROUTE_TO_PRIMARY: 1}
    assert tracker.halts == {"CanaryNotReady": 1}
    started, persisted = bench.step_lags(tracker, interval=10.0)
    assert started == [pytest.approx(0.25)]
    assert persisted == [pytest.approx(0.3)]


def test_tracker_times_a_rollback_from_the_failing_webhook_to_the_primary_route() -> None:
    tracker = bench.Tracker({"b": True})
    released(tracker, "b", failing=True)
    assert tracker.tracks["b"].rolled_back_at == T0 + 20.05
    assert tracker.tracks["b"].phase == "Failed"


def test_tracker_ignores_versions_before_the_edit_and_repeated_statuses() -> None:
    tracker = bench.Tracker({"c": False})
    tracker.on_canary("ADDED", canary_event("c", "Initializing"), 0.0)
    tracker.on_canary("MODIFIED", canary_event("c", "Initialized"), 1.0)
    assert tracker.status_kinds == {}
    tracker.begin_release()
    tracker.tracks["c"].editing = True
    tracker.on_canary("MODIFIED", canary_event("c", "Initialized"), 2.0)  # a relist re-delivers the same status
    tracker.on_canary("MODIFIED", canary_event("unknown", "Progressing"), 2.0)
    assert tracker.status_kinds == {}
    assert tracker.tracks["c"].statuses == 0


def deployment_event(name: str, generation: int, replicas: int, image: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}


def test_tracker_tells_scale_up_primary_copy_and_scale_down_apart_from_the_bench_edit() -> None:
    tracker = bench.Tracker({"d": False})
    tracker.on_deployment("ADDED", deployment_event("d", 2, 0, "v1"), 0.0)
    tracker.on_deployment("ADDED", deployment_event("d-primary", 1, 1, "v1"), 0.0)
    tracker.on_deployment("ADDED", deployment_event("other", 1, 1, "v1"), 0.0)
    tracker.begin_release()
    tracker.tracks["d"].editing = True
    for event in (deployment_event("d", 3, 0, "v2"), deployment_event("d", 4, 1, "v2"),
                  deployment_event("d", 4, 1, "v2"), deployment_event("d-primary", 2, 1, "v2"),
                  deployment_event("d", 5, 0, "v2"), deployment_event("other", 2, 3, "v1")):
        tracker.on_deployment("MODIFIED", event, 1.0)
    assert tracker.deployment_kinds == {bs.TARGET_EDIT: 1, bs.SCALE_UP: 1, bs.PRIMARY_COPY: 1, bs.SCALE_DOWN: 1}


def usage_of(cpu: float, rss: float = 100.0) -> Usage:
    return Usage(cpu, rss, rss)


def test_cpu_report_shows_each_process_and_what_the_rest_of_the_machine_took() -> None:
    before = bench.Snapshot(0.0, 100.0, {"bench": (1, usage_of(1.0)), "sandbox": (2, usage_of(10.0)),
                                         "controller-0": (3, usage_of(20.0)), "controller-1": (4, usage_of(5.0))})
    after = bench.Snapshot(10.0, 115.0, {"bench": (1, usage_of(1.5)), "sandbox": (2, usage_of(14.0)),
                                         "controller-0": (3, usage_of(28.0)), "controller-1": (9, usage_of(0.5))})
    report = bench.cpu_report(before, after, steps=1000, roles={"controller-0": "leader",
                                                                "controller-1": "standby"})
    assert report["bench"]["cpu_s"] == 0.5
    assert report["sandbox"]["cpu_ms_per_step"] == 4.0
    assert report["controller-0"] == {"cpu_s": 8.0, "cpu_ms_per_step": 8.0, "cores": 0.8, "peak_rss_mib": 100.0,
                                      "role": "leader"}
    # controller-1 was restarted (a new pid): its CPU counts from zero.
    assert report["controller-1"]["cpu_s"] == 0.5
    assert report["machine"]["busy_s"] == 15.0
    assert report["machine"]["others_cpu_s"] == 2.0


def args_of(*argv: str) -> argparse.Namespace:
    return bench.parse_args(list(argv))


def test_phase_timeout_grows_with_canaries_unless_given() -> None:
    small, large = bench.phase_timeout(100, args_of("--interval", "30")), bench.phase_timeout(
        5000, args_of("--interval", "30"))
    assert large - small == pytest.approx(0.5 * 4900)
    assert small >= 30 * 9  # every step of a release at the interval fits
    assert bench.phase_timeout(5000, args_of("--timeout", "60")) == 60.0


def test_scale_and_canaries_give_the_runs() -> None:
    assert args_of("--scale", "100,1000,5000").scale == [100, 1000, 5000]
    assert args_of("--canaries", "7").scale == [7]


@pytest.mark.parametrize(("argv", "named"), [
    (["--scale", "100,lots"], "--scale"),
    (["--canaries", "0"], "--scale/--canaries"),
    (["--interval", "0"], "--interval"),
    (["--step-weight", "60", "--max-weight", "50"], "--step-weight/--max-weight"),
    (["--rollback-fraction", "2"], "--rollback-fraction"),
    (["--timeout", "-1"], "--timeout"),
    (["--create-concurrency", "0"], "--create-concurrency"),
    (["--lease-duration", "0"], "--lease-duration"),
])
def test_bad_flags_are_named(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert named in capsys.readouterr().err


def test_controller_command_line_passes_lease_timings_only_in_ha() -> None:
    ha = bench.controller_argv("/k", 8080, args_of("--lease-duration", "4", "--retry-period", "0.5"))
    assert ha[ha.index("--leader-election-lease-duration") + 1] == "4"
    assert ha[ha.index("--leader-election-retry-period") + 1] == "0.5"
    assert "--leader-election-renew-deadline" not in ha
    single = bench.controller_argv("/k", 8080, args_of("--no-ha", "--lease-duration", "4"))
    assert "--enable-leader-election" not in single
    assert "--leader-election-lease-duration" not in single


class ChunkedContent:
    """aiohttp's response content, delivering a watch stream in arbitrary chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> Any:
        for chunk in self.chunks:
            yield chunk


class ChunkedResponse:
    def __init__(self, chunks: list[bytes]) -> None:
        self.content = ChunkedContent(chunks)


async def test_watch_lines_are_decoded_whatever_the_chunking() -> None:
    import bench_cluster

    stream = b'{"type":"ADDED","object":{"n":1}}\n\n{"type":"MODIFIED","object":{"n":2}}\n{"type":"BOOKMARK"}'
    for size in (1, 7, 33, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        lines = [line async for line in bench_cluster._lines(ChunkedResponse(chunks))]  # type: ignore[arg-type]
        assert lines == [{"type": "ADDED", "object": {"n": 1}}, {"type": "MODIFIED", "object": {"n": 2}},
                         {"type": "BOOKMARK"}]
