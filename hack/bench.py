"""Benchmark flaggerpy against the sandbox, each in its own process; JSON on stdout, progress on stderr.

    python hack/bench.py --canaries 1000
    python hack/bench.py --scale 100,1000,5000

One run: N Deployments and Canaries (every tenth with a rollout webhook that fails, so it rolls back), the
controller (two replicas with leader election unless ``--no-ha``) initialises them; then every Deployment gets a new
image, edits spread evenly over one interval, and every release runs to its end. Measured:

- detection: edit acknowledged by the API server → the bench's watch sees the Canary ``Progressing``;
- step lag: how late each analysis step ran after it was due (``status.lastTransitionTime`` of a weight step minus
  the previous step's plus the interval), and how late the bench saw it persisted;
- API calls per step by verb (the sandbox's request counters minus the bench's own; a step is one transition of
  the state machine: a new (phase, weight, iteration)), controller CPU seconds per step and peak RSS (/proc);
- rollback: the failing check's webhook call → the bench sees the route at 100% primary;
- failover (HA): a second release; the leader is killed (SIGKILL) mid-way → the first step the new leader commits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import Api, canary, deployment
from bench_proc import Usage, usage

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
OLD_IMAGE, NEW_IMAGE, THIRD_IMAGE = "podinfo:1.0.0", "podinfo:1.0.1", "podinfo:1.0.2"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
CANARIES = f"/apis/flagger.app/v1beta1/namespaces/{NAMESPACE}/canaries"
HTTPROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes"
TERMINAL = ("Succeeded", "Failed")
# A kill is instant, but a write the old leader sent just before it may still commit: ignore that long after.
_KILL_GUARD = 0.1


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> dict[str, Any]:
    """p50/p99/max in milliseconds of values in seconds."""
    def ms(q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 1)

    return {"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0), "samples": len(values)}


def parse_time(text: Any) -> float | None:
    """A status timestamp as epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- what the bench sees ----------------------------------------------------------------------------------------


@dataclass
class CanaryTrack:
    """One canary's release as observed by the bench."""

    failing: bool
    edited_at: float | None = None
    detected_at: float | None = None
    finished_at: float | None = None
    phase: str = ""
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # weight → (lastTransitionTime, arrival)
    statuses: int = 0
    transitions: set[tuple[str, int, int]] = field(default_factory=set)
    route_weight: int = 0
    rolled_back_at: float | None = None
    last_status: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Feeds on the bench's watches of Canaries and HTTPRoutes."""

    def __init__(self, names: dict[str, bool]) -> None:
        self.tracks = {name: CanaryTrack(failing) for name, failing in names.items()}
        self.webhook_calls: dict[str, float] = {}
        self.status_events: list[float] = []
        self.halts: dict[str, int] = {}
        self.changed = asyncio.Event()

    def on_canary(self, kind: str, obj: dict[str, Any], arrival: float) -> None:
        """A Canary event."""
        track = self.tracks.get(obj["metadata"]["name"])
        status = obj.get("status") or {}
        if track is None or kind == "DELETED" or status == track.last_status:
            return
        track.last_status = status
        track.phase = status.get("phase") or ""
        self.changed.set()
        if track.edited_at is None:
            return
        track.statuses += 1
        track.transitions.add((track.phase, int(status.get("canaryWeight") or 0), int(status.get("iterations") or 0)))
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Halted":
                self.halts[cond.get("reason", "")] = self.halts.get(cond.get("reason", ""), 0) + 1
        self.status_events.append(arrival)
        if track.detected_at is None and track.phase == "Progressing":
            track.detected_at = arrival
        weight = int(status.get("canaryWeight") or 0)
        stamp = parse_time(status.get("lastTransitionTime"))
        if track.phase == "Progressing" and weight > 0 and weight not in track.steps and stamp is not None:
            track.steps[weight] = (stamp, arrival)
        if track.detected_at is not None and track.phase in TERMINAL and track.finished_at is None:
            track.finished_at = arrival

    def on_route(self, kind: str, obj: dict[str, Any], arrival: float) -> None:
        """An HTTPRoute event: notice when a failing canary's traffic is back on the primary."""
        name = obj["metadata"]["name"]
        track = self.tracks.get(name)
        rules = (obj.get("spec") or {}).get("rules") or []
        if track is None or kind == "DELETED" or not rules:
            return
        weights = {b["name"]: int(b.get("weight", 1)) for b in rules[-1].get("backendRefs") or []}
        weight = weights.get(f"{name}-canary", 0)
        if track.route_weight > 0 and weight == 0 and track.rolled_back_at is None and track.failing:
            track.rolled_back_at = arrival
        track.route_weight = weight

    def begin_release(self) -> None:
        """Forget the previous release's observations."""
        for name, track in self.tracks.items():
            self.tracks[name] = CanaryTrack(track.failing, phase=track.phase, last_status=track.last_status,
                                            route_weight=track.route_weight)
        self.webhook_calls.clear()
        self.status_events.clear()
        self.halts.clear()

    def count(self, predicate: Any) -> int:
        """How many tracks satisfy ``predicate``."""
        return sum(1 for track in self.tracks.values() if predicate(track))


async def failing_webhook(tracker: Tracker) -> tuple[web.AppRunner, str]:
    """A rollout webhook that refuses every call, remembering when each canary first called it."""
    async def refuse(request: web.Request) -> web.Response:
        payload = await request.json()
        tracker.webhook_calls.setdefault(payload.get("name", ""), time.time())
        return web.Response(status=500, text="refused by the benchmark")

    app = web.Application()
    app.router.add_post("/", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/"


# -- processes --------------------------------------------------------------------------------------------------


async def start_sandbox(workdir: Path, args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, str, str]:
    """The sandbox process; (process, url, kubeconfig)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "hack" / "bench_sandbox.py"), "--kubeconfig", str(workdir / "kubeconfig"),
        "--namespace", NAMESPACE, "--gateway", args.gateway,
        stdout=asyncio.subprocess.PIPE, stderr=(workdir / "sandbox.log").open("wb"),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if not line:
        raise RuntimeError(f"the sandbox did not start:\n{(workdir / 'sandbox.log').read_text()[-2000:]}")
    info = json.loads(line)
    return process, info["url"], info["kubeconfig"]


@dataclass
class Replica:
    """One controller process, its telemetry port and log index; ``killed`` when the bench killed it."""

    process: asyncio.subprocess.Process
    port: int
    index: int
    killed: bool = False


async def start_controller(kubeconfig: str, workdir: Path, index: int, args: argparse.Namespace) -> Replica:
    """``flaggerpy run`` as its own process."""
    port = free_port()
    argv = [sys.executable, "-m", "flaggerpy.cli", "run", "--kubeconfig", kubeconfig, "--namespace", NAMESPACE,
            "--metrics-server", "http://127.0.0.1:9", "--threadiness", str(args.threadiness),
            "--port", str(port), "--listen-address", "127.0.0.1", "--log-level", "warning"]
    if args.ha:
        argv += ["--enable-leader-election", "--leader-election-namespace", NAMESPACE]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=(workdir / f"controller-{index}.log").open("wb"),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return Replica(process, port, index)


async def leader_of(replicas: list[Replica], session: aiohttp.ClientSession) -> Replica:
    """The replica whose telemetry says it holds the lease (``flaggerpy_leader 1.0``)."""
    while True:
        for replica in replicas:
            if replica.process.returncode is not None:
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{replica.port}/metrics",
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200 and "\nflaggerpy_leader 1.0" in await resp.text():
                        return replica
        await asyncio.sleep(0.1)


def usage_of(replicas: list[Replica]) -> dict[int, Usage]:
    """Usage of every live replica by pid."""
    found = {replica.process.pid: usage(replica.process.pid) for replica in replicas}
    return {pid: u for pid, u in found.items() if u is not None}


async def supervise(replicas: list[Replica], kubeconfig: str, workdir: Path, args: argparse.Namespace,
                    restarts: list[str]) -> None:
    """Restart replicas that exit, as Kubernetes would (a leader that cannot renew its lease exits on purpose);
    each restart is reported with the last line its replica logged."""
    while True:
        await asyncio.sleep(0.5)
        for index, replica in enumerate(replicas):
            if replica.process.returncode is None or replica.killed:
                continue
            log = (workdir / f"controller-{replica.index}.log").read_text(errors="replace").strip().splitlines()
            restarts.append(f"exit {replica.process.returncode}: {log[-1] if log else ''}"[:300])
            replicas[index] = await start_controller(kubeconfig, workdir, replica.index + 10, args)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


# -- one run ----------------------------------------------------------------------------------------------------


async def wait_until(tracker: Tracker, progress: Progress, label: str, done: Any, total: int,
                     timeout: float) -> None:  # noqa: ASYNC109
    """Advance a progress bar until ``done()`` reaches ``total``; TimeoutError after ``timeout``."""
    task = progress.add_task(label, total=total)
    try:
        async with asyncio.timeout(timeout):
            while (count := done()) < total:
                progress.update(task, completed=count)
                tracker.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tracker.changed.wait(), 1.0)
        progress.update(task, completed=total)
    finally:
        progress.remove_task(task)


async def edit_all(api: Api, tracker: Tracker, image: str, spread: float) -> None:
    """Give every Deployment ``image``, the edits spread evenly over ``spread`` seconds."""
    names = list(tracker.tracks)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def edit(index: int, name: str) -> None:
        await asyncio.sleep(max(0.0, start + spread * index / len(names) - loop.time()))
        dep = await api.get(f"{DEPLOYMENTS}/{name}")
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
        await api.replace(f"{DEPLOYMENTS}/{name}", dep)
        tracker.tracks[name].edited_at = time.time()

    await asyncio.gather(*(edit(i, name) for i, name in enumerate(names)))


def controller_calls(counters: dict[str, dict[str, int]], edits: int) -> dict[str, dict[str, int]]:
    """The sandbox's counters minus the bench's own requests (a get and an update per edited Deployment)."""
    result = {resource: dict(verbs) for resource, verbs in counters.items()}
    deployments = result.get("deployments.apps", {})
    for verb in ("get", "update"):
        if verb in deployments:
            deployments[verb] -= edits
    return {r: {v: n for v, n in verbs.items() if n} for r, verbs in result.items() if any(verbs.values())}


def per_step(calls: dict[str, dict[str, int]], steps: int) -> dict[str, Any]:
    """Calls per step by verb, and writes/reads per step with the resources they went to."""
    writes = {"create", "update", "patch", "delete"}
    by_verb: dict[str, int] = {}
    for verbs in calls.values():
        for verb, n in verbs.items():
            by_verb[verb] = by_verb.get(verb, 0) + n
    def ratio(n: int) -> float:
        return round(n / steps, 3) if steps else math.nan

    return {
        "by_verb": {verb: ratio(n) for verb, n in sorted(by_verb.items())},
        "writes": ratio(sum(n for v, n in by_verb.items() if v in writes)),
        "writes_without_events": ratio(sum(n for resource, verbs in calls.items() if resource != "events"
                                           for v, n in verbs.items() if v in writes)),
        "reads": ratio(by_verb.get("get", 0) + by_verb.get("list", 0)),
        "writes_by_resource": {
            resource: ratio(sum(n for v, n in verbs.items() if v in writes))
            for resource, verbs in sorted(calls.items()) if any(v in writes for v in verbs)
        },
    }


def step_lags(tracker: Tracker, interval: float) -> tuple[list[float], list[float]]:
    """(how late each weight step started after it was due, how late the bench saw it persisted)."""
    started, persisted = [], []
    for track in tracker.tracks.values():
        ordered = sorted(track.steps.items())
        for (_, (prev_stamp, _)), (_, (stamp, arrival)) in pairwise(ordered):
            due = prev_stamp + interval
            started.append(max(0.0, stamp - due))
            persisted.append(max(0.0, arrival - due))
    return started, persisted


async def run_once(n: int, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """One benchmark run with ``n`` canaries; its figures."""
    workdir = Path(tempfile.mkdtemp(prefix=f"flaggerpy-bench-{n}-"))
    failing_every = max(1, round(1 / args.rollback_fraction)) if args.rollback_fraction > 0 else 0
    names = {f"app-{i:05d}": bool(failing_every) and i % failing_every == failing_every - 1 for i in range(n)}
    tracker = Tracker(names)
    sandbox, url, kubeconfig = await start_sandbox(workdir, args)
    replicas: list[Replica] = []
    hook_runner, hook_url = await failing_webhook(tracker)
    watchers: list[asyncio.Task[None]] = []
    supervisor: asyncio.Task[None] | None = None
    restarts: list[str] = []
    result: dict[str, Any] = {"canaries": n, "interval_s": args.interval, "replicas": 2 if args.ha else 1,
                              "gateway": args.gateway}
    try:
        async with Api(url) as api:
            listed = [asyncio.Event(), asyncio.Event()]
            watchers = [asyncio.create_task(api.watch(CANARIES, tracker.on_canary, listed[0])),
                        asyncio.create_task(api.watch(HTTPROUTES, tracker.on_route, listed[1]))]
            await asyncio.gather(*(e.wait() for e in listed))
            created = progress.add_task(f"[{n}] create", total=n)

            async def create(name: str, failing: bool) -> None:
                await api.create(DEPLOYMENTS, deployment(name, NAMESPACE, OLD_IMAGE))
                await api.create(CANARIES, canary(name, NAMESPACE, args.interval, args.step_weight,
                                                  args.max_weight, hook_url if failing else None))
                progress.advance(created)

            await asyncio.gather(*(create(name, failing) for name, failing in names.items()))
            progress.remove_task(created)
            for index in range(2 if args.ha else 1):
                replicas.append(await start_controller(kubeconfig, workdir, index, args))
            supervisor = asyncio.create_task(supervise(replicas, kubeconfig, workdir, args, restarts))
            init_started = time.time()
            await wait_until(tracker, progress, f"[{n}] initialise", lambda: tracker.count(
                lambda t: t.phase == "Initialized"), n, args.timeout)
            result["initialisation_s"] = round(time.time() - init_started, 1)

            # Release 1: detection, step lag, API calls, CPU, rollback.
            tracker.begin_release()
            await api.request("DELETE", "/sandbox/counters")
            before, sandbox_before = usage_of(replicas), usage(sandbox.pid)
            await edit_all(api, tracker, NEW_IMAGE, args.interval)
            await wait_until(tracker, progress, f"[{n}] release", lambda: tracker.count(
                lambda t: t.finished_at is not None), n, args.timeout)
            after, sandbox_after = usage_of(replicas), usage(sandbox.pid)
            counters = await api.get("/sandbox/counters")
            steps = sum(len(track.transitions) for track in tracker.tracks.values())
            status_writes = sum(track.statuses for track in tracker.tracks.values())
            detection = [t.detected_at - t.edited_at for t in tracker.tracks.values()
                         if t.detected_at is not None and t.edited_at is not None]
            started, persisted = step_lags(tracker, args.interval)
            rollbacks = [t.rolled_back_at - tracker.webhook_calls[name] for name, t in tracker.tracks.items()
                         if t.failing and t.rolled_back_at is not None and name in tracker.webhook_calls]
            calls = controller_calls(counters, n)
            assert sandbox_before is not None and sandbox_after is not None
            # CPU of every replica (a standby's informers count too); a replica that died meanwhile is not counted.
            cpu = sum(u.cpu_seconds - (before[pid].cpu_seconds if pid in before else 0.0) for pid, u in after.items())
            result.update({
                "outcome": {"succeeded": tracker.count(lambda t: t.phase == "Succeeded"),
                            "failed": tracker.count(lambda t: t.phase == "Failed"),
                            "designed_to_fail": sum(names.values())},
                "detection": summary_ms(detection),
                "step_lag": summary_ms(started),
                "step_lag_persisted": summary_ms(persisted),
                "rollback": summary_ms(rollbacks),
                "steps": steps,
                "status_versions": status_writes,
                "status_versions_halted_by_reason": dict(tracker.halts),
                "api_calls_per_step": per_step(calls, steps),
                "api_calls_total": calls,
                "controller_cpu_s_per_step": round(cpu / steps, 5),
                "controller_peak_rss_mib": round(max((u.peak_rss_mib for u in after.values()), default=0.0), 1),
                "sandbox_cpu_s_per_step": round((sandbox_after.cpu_seconds - sandbox_before.cpu_seconds) / steps,
                                                5),
            })
            if args.ha:
                result["failover"] = await failover(api, tracker, progress, replicas, n, args)
        result["controller_restarts"] = restarts
    finally:
        tasks = [*watchers, *([supervisor] if supervisor else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hook_runner.cleanup()
        for replica in replicas:
            await stop(replica.process)
        await stop(sandbox)
    return result


async def failover(api: Api, tracker: Tracker, progress: Progress, replicas: list[Replica], n: int,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Release 2; kill the leader once a third of the canaries made a step; time to the new leader's first step."""
    tracker.begin_release()
    editing = asyncio.create_task(edit_all(api, tracker, THIRD_IMAGE, args.interval))
    await wait_until(tracker, progress, f"[{n}] failover: steps before the kill",
                     lambda: tracker.count(lambda t: bool(t.steps)), max(1, n // 3), args.timeout)
    leader = await leader_of(replicas, api.session)
    leader.killed = True
    leader.process.kill()
    killed_at = time.time()
    await editing
    await wait_until(tracker, progress, f"[{n}] failover: release", lambda: tracker.count(
        lambda t: t.finished_at is not None), n, args.timeout)
    first = min((t for t in tracker.status_events if t > killed_at + _KILL_GUARD), default=None)
    return {
        "kill_to_first_step_s": None if first is None else round(first - killed_at, 2),
        "all_finished": tracker.count(lambda t: t.finished_at is not None) == n,
        "note": "bounded below by the Lease (15 s duration, 2 s retry): a killed leader cannot release it",
    }


def growth(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How each headline figure grows from the smallest run to each larger one (ratio)."""
    def figure(run: dict[str, Any], path: tuple[str, ...]) -> float | None:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, int | float) else None

    paths = {
        "detection_p99": ("detection", "p99_ms"), "step_lag_p99": ("step_lag", "p99_ms"),
        "writes_per_step": ("api_calls_per_step", "writes"), "cpu_s_per_step": ("controller_cpu_s_per_step",),
        "peak_rss_mib": ("controller_peak_rss_mib",), "rollback_p99": ("rollback", "p99_ms"),
    }
    base = runs[0]
    out: dict[str, Any] = {}
    for name, path in paths.items():
        first = figure(base, path)
        out[name] = {
            str(run["canaries"]): (None if first in (None, 0) or figure(run, path) is None
                                   else round(figure(run, path) / first, 2))  # type: ignore[operator]
            for run in runs
        }
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested scale, one after the other."""
    console = Console(stderr=True)
    runs = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        for n in args.scale:
            runs.append(await run_once(n, args, progress))
            console.log(f"{n} canaries done: {json.dumps(runs[-1])}")
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(), "runs": runs}
    if len(runs) > 1:
        report["growth_vs_first"] = growth(runs)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=1000, help="canaries in one run (default 1000)")
    parser.add_argument("--scale", default="", help="comma-separated canary counts, one run each (e.g. 100,1000)")
    parser.add_argument("--interval", type=float, default=5.0, help="analysis interval in seconds (default 5)")
    parser.add_argument("--step-weight", type=int, default=10, help="stepWeight (default 10)")
    parser.add_argument("--max-weight", type=int, default=50, help="maxWeight (default 50)")
    parser.add_argument("--rollback-fraction", type=float, default=0.1,
                        help="share of canaries whose rollout webhook fails (default 0.1)")
    parser.add_argument("--threadiness", type=int, default=8, help="controller workers (default 8)")
    parser.add_argument("--no-ha", dest="ha", action="store_false",
                        help="one controller replica, no leader election, no failover figure")
    parser.add_argument("--gateway", choices=["instant", "dataplane"], default="instant",
                        help="HTTPRoute acceptance by an instant stand-in Gateway (default) or the sandbox data plane")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per phase (default 900)")
    args = parser.parse_args(argv)
    problems = []
    try:
        args.scale = [int(x) for x in args.scale.split(",") if x.strip()] if args.scale else [args.canaries]
    except ValueError:
        problems.append(f"--scale: {args.scale!r} is not a comma-separated list of integers")
        args.scale = []
    if any(n < 1 for n in args.scale):
        problems.append("--scale/--canaries: every count must be >= 1")
    if args.interval <= 0:
        problems.append("--interval: must be > 0")
    if not 0 < args.step_weight <= args.max_weight <= 100:
        problems.append("--step-weight/--max-weight: need 0 < step-weight <= max-weight <= 100")
    if not 0 <= args.rollback_fraction <= 1:
        problems.append("--rollback-fraction: must be between 0 and 1")
    if problems:
        parser.error("; ".join(problems))
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON report."""
    args = parse_args(argv)
    report = asyncio.run(main_async(args))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
