"""Benchmark flaggerpy against the sandbox, each in its own process; JSON on stdout, progress on stderr.

    python hack/bench.py --canaries 1000
    python hack/bench.py --scale 100,1000,5000 --interval 30
    python hack/bench.py --canaries 300 --interval 10 --no-ha --profile /tmp/prof

One run: N Deployments and Canaries (every tenth with a rollout webhook that fails, so it rolls back) are created
before any controller starts; the controller (two replicas with leader election unless ``--no-ha``) initialises
them; then every Deployment gets a new image, edits spread evenly over one interval, and every release runs to its
end. Only that release is measured:

- detection: edit acknowledged by the API server → the bench's watch sees the Canary ``Progressing``;
- step lag: how late each analysis step ran after it was due (``status.lastTransitionTime`` of a weight step minus
  the previous step's plus the interval), and how late the bench saw it persisted;
- API calls: the sandbox's request counters minus the bench's own requests, per state-machine transition (a new
  (phase, weight, iteration)) by verb and resource, and split into what a weight step writes (the route and the
  status), what a release writes once (phase changes, halts, Deployments, Services, the route back to the primary),
  Events and Lease traffic;
- CPU seconds per transition of every process (bench, sandbox, each controller replica with its role) next to the
  whole machine's busy time, and peak RSS;
- rollback: the failing check's webhook call → the bench sees the route at 100% primary;
- failover (HA): a second release; the leader is killed (SIGKILL) mid-way → the standby acquires the Lease
  (its ``acquireTime``) and reports leading (its /readyz, polled) → its first committed step.

Each run also says which of the issue's targets it met (``targets``), how often watches had to start over
(``controller_watch_reconnects``, ``bench_watch_relists``), and with ``--profile DIR`` leaves py-spy profiles of
every process for the measured release. ``--scale`` adds ``growth_vs_first``: every figure's ratio to the first run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real
from bench_cluster import Api, canary, deployment
from bench_proc import PROFILE_FORMATS, Profiler, Usage, machine_busy_seconds, usage
from bench_stats import (
    READ_VERBS,
    WEIGHT_STEP,
    WRITE_VERBS,
    DeploymentState,
    State,
    classify_deployment,
    classify_route,
    classify_status,
    counter_by_label,
    growth,
    parse_time,
    per_step,
    status_state,
    subtract,
    summary_ms,
    targets,
    write_accounting,
)

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
OLD_IMAGE, NEW_IMAGE, THIRD_IMAGE = "podinfo:1.0.0", "podinfo:1.0.1", "podinfo:1.0.2"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
CANARIES = f"/apis/flagger.app/v1beta1/namespaces/{NAMESPACE}/canaries"
HTTPROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes"
def lease_path(args: argparse.Namespace) -> str:
    """The controllers' Lease (flaggerpy run's LEASE_NAME): in the bench namespace on the sandbox, in
    flaggerpy-system on a real cluster, where deploy/rbac grants it."""
    namespace = bench_real.CONTROLLER_NAMESPACE if args.cluster == "real" else NAMESPACE
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/flaggerpy"
TERMINAL = ("Succeeded", "Failed")
# A kill is instant, but a write the old leader sent just before it may still commit: ignore that long after.
_KILL_GUARD = 0.1
# How often progress is polled: counting N tracks costs O(N), so it is done on a clock, never per watch event.
_POLL = 0.25
# Flagger's default Lease timings, which the controller uses unless the bench passes others.
_DEFAULT_LEASE_S = 15.0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phase_timeout(n: int, args: argparse.Namespace) -> float:
    """Seconds allowed for one phase (initialise, a release): ``--timeout`` when given, else enough for every step
    of a release at ``--interval`` plus time proportional to N (the controller works through N canaries)."""
    if args.timeout is not None:
        return float(args.timeout)
    steps = -(-args.max_weight // args.step_weight) + 4
    return 300 + args.interval * steps + 0.5 * n


# -- what the bench sees ----------------------------------------------------------------------------------------


@dataclass
class CanaryTrack:
    """One canary's release as observed by the bench."""

    failing: bool
    editing: bool = False
    edit_sent_at: float | None = None
    edited_at: float | None = None
    detected_at: float | None = None
    finished_at: float | None = None
    phase: str = ""
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # weight → (lastTransitionTime, arrival)
    statuses: int = 0
    transitions: set[State] = field(default_factory=set)
    route_state: tuple[int, int] | None = None  # (generation, canary weight)
    rolled_back_at: float | None = None
    last_status: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Feeds on the bench's watches of Canaries and HTTPRoutes; every handler is O(1) per event."""

    def __init__(self, names: dict[str, bool]) -> None:
        self.tracks = {name: CanaryTrack(failing) for name, failing in names.items()}
        self.webhook_calls: dict[str, float] = {}
        self.status_events: list[float] = []
        self.halts: Counter[str] = Counter()
        self.status_kinds: Counter[str] = Counter()
        self.route_kinds: Counter[str] = Counter()
        self.deployment_kinds: Counter[str] = Counter()
        self.deployments: dict[str, DeploymentState] = {}

    def on_canary(self, kind: str, obj: dict[str, Any], arrival: float) -> None:
        """A Canary event."""
        track = self.tracks.get(obj["metadata"]["name"])
        status = obj.get("status") or {}
        if track is None or kind == "DELETED" or status == track.last_status:
            return
        before = status_state(track.last_status) if track.last_status else None
        state = status_state(status)
        track.last_status = status
        track.phase = state[0]
        if not track.editing:
            return
        self.status_kinds[classify_status(before, state)] += 1
        track.statuses += 1
        track.transitions.add(state)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Halted":
                self.halts[cond.get("reason", "")] += 1
        self.status_events.append(arrival)
        if track.detected_at is None and track.phase == "Progressing":
            track.detected_at = arrival
        weight = state[1]
        stamp = parse_time(status.get("lastTransitionTime"))
        if track.phase == "Progressing" and weight > 0 and weight not in track.steps and stamp is not None:
            track.steps[weight] = (stamp, arrival)
        if track.detected_at is not None and track.phase in TERMINAL and track.finished_at is None:
            track.finished_at = arrival

    def on_route(self, kind: str, obj: dict[str, Any], arrival: float) -> None:
        """An HTTPRoute event: classify the controller's route writes; notice when a failing canary's traffic is
        back on the primary."""
        meta = obj["metadata"]
        name = meta["name"]
        track = self.tracks.get(name)
        rules = (obj.get("spec") or {}).get("rules") or []
        if track is None or kind == "DELETED" or not rules:
            return
        weights = {b["name"]: int(b.get("weight", 1)) for b in rules[-1].get("backendRefs") or []}
        weight = weights.get(f"{name}-canary", 0)
        state = (int(meta.get("generation") or 0), weight)
        route_kind = classify_route(track.route_state, state)
        previous = track.route_state[1] if track.route_state else 0
        track.route_state = state
        if not track.editing or route_kind is None:
            return
        self.route_kinds[route_kind] += 1
        if previous > 0 and weight == 0 and track.rolled_back_at is None and track.failing:
            track.rolled_back_at = arrival

    def on_deployment(self, kind: str, obj: dict[str, Any], arrival: float) -> None:
        """A Deployment event: classify the controller's writes to a canary's target and primary."""
        name = obj["metadata"]["name"]
        primary = name.endswith("-primary")
        track = self.tracks.get(name.removesuffix("-primary"))
        if track is None or kind == "DELETED":
            self.deployments.pop(name, None)
            return
        spec = obj.get("spec") or {}
        replicas = spec.get("replicas")
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        state = (int(obj["metadata"].get("generation") or 0), 1 if replicas is None else int(replicas),
                 ",".join(str(c.get("image", "")) for c in containers))
        deployment_kind = classify_deployment(self.deployments.get(name), state, primary)
        self.deployments[name] = state
        if track.editing and deployment_kind is not None:
            self.deployment_kinds[deployment_kind] += 1

    def begin_release(self) -> None:
        """Forget the previous release's observations (keeping what the next one compares against)."""
        for name, track in self.tracks.items():
            self.tracks[name] = CanaryTrack(track.failing, phase=track.phase, last_status=track.last_status,
                                            route_state=track.route_state)
        self.webhook_calls.clear()
        self.status_events.clear()
        self.halts.clear()
        self.status_kinds.clear()
        self.route_kinds.clear()
        self.deployment_kinds.clear()

    def count(self, predicate: Callable[[CanaryTrack], bool]) -> int:
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


async def start_sandbox(workdir: Path, n: int, args: argparse.Namespace) -> tuple[asyncio.subprocess.Process, str,
                                                                                   str]:
    """The sandbox process; (process, url, kubeconfig). Its watch history grows with N so that a watcher that
    reconnects mid-run resumes instead of being sent 410 Gone (every retained event holds an object version, so the
    window is not made larger than that)."""
    history = args.sandbox_history or max(500_000, 100 * n)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "hack" / "bench_sandbox.py"), "--kubeconfig", str(workdir / "kubeconfig"),
        "--namespace", NAMESPACE, "--gateway", args.gateway, "--history", str(history),
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

    @property
    def name(self) -> str:
        """How the report names this replica."""
        return f"controller-{self.index}"


def controller_argv(kubeconfig: str, port: int, args: argparse.Namespace) -> list[str]:
    """``flaggerpy run``'s command line for one replica."""
    argv = [sys.executable, "-m", "flaggerpy.cli", "run", "--kubeconfig", kubeconfig, "--namespace", NAMESPACE,
            "--metrics-server", "http://127.0.0.1:9", "--threadiness", str(args.threadiness),
            "--port", str(port), "--listen-address", "127.0.0.1", "--log-level", "warning",
            "--kubeconfig-qps", f"{args.kubeconfig_qps:g}", "--kubeconfig-burst", str(args.kubeconfig_burst)]
    if args.ha:
        lease_namespace = bench_real.CONTROLLER_NAMESPACE if args.cluster == "real" else NAMESPACE
        argv += ["--enable-leader-election", "--leader-election-namespace", lease_namespace]
        for flag, value in (("lease-duration", args.lease_duration), ("renew-deadline", args.renew_deadline),
                            ("retry-period", args.retry_period)):
            if value is not None:
                argv += [f"--leader-election-{flag}", f"{value:g}"]
    return argv


async def start_controller(kubeconfig: str, workdir: Path, index: int, args: argparse.Namespace) -> Replica:
    """``flaggerpy run`` as its own process."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *controller_argv(kubeconfig, port, args), stdout=asyncio.subprocess.DEVNULL,
        stderr=(workdir / f"controller-{index}.log").open("wb"), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return Replica(process, port, index)


async def is_leader(replica: Replica, session: aiohttp.ClientSession) -> bool:
    """Whether the replica says it holds the lease: ``/readyz`` names its role. It is asked rather than /metrics,
    whose per-canary series at thousands of canaries would cost the replica real CPU at every poll."""
    if replica.process.returncode is not None or replica.killed:
        return False
    timeout = aiohttp.ClientTimeout(total=2)
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(f"http://127.0.0.1:{replica.port}/readyz", timeout=timeout) as resp:
            body = await resp.text()
        if "(" in body:
            return "(leader)" in body
        # A controller whose /readyz does not name its role: its leader gauge says it.
        async with session.get(f"http://127.0.0.1:{replica.port}/metrics", timeout=timeout) as resp:
            return resp.status == 200 and "\nflaggerpy_leader 1.0" in await resp.text()
    return False


async def leader_of(replicas: list[Replica], session: aiohttp.ClientSession, within: float) -> Replica | None:
    """The replica that leads, polled every 0.1 s; None when none does within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for replica in list(replicas):
            if await is_leader(replica, session):
                return replica
        await asyncio.sleep(0.1)
    return None


async def watch_reconnects(replicas: list[Replica], session: aiohttp.ClientSession) -> dict[str, Any]:
    """Each live replica's watch reconnects by reason, from one scrape of its /metrics at the end of a run (a
    reconnect for ``gone`` means a relist: the sandbox's history or a watcher's backlog was too short)."""
    out: dict[str, Any] = {}
    for replica in replicas:
        if replica.process.returncode is not None or replica.killed:
            continue
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"http://127.0.0.1:{replica.port}/metrics",
                                   timeout=aiohttp.ClientTimeout(total=10)) as resp:
                out[replica.name] = counter_by_label(await resp.text(), "flaggerpy_watch_reconnects_total",
                                                     "reason")
    return out


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


# -- CPU accounting ---------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """CPU and memory of every measured process at one moment, and the machine's busy time."""

    at: float
    machine_busy_s: float
    processes: dict[str, tuple[int, Usage]]  # name → (pid, usage)


def snapshot(servers: dict[str, int], replicas: list[Replica]) -> Snapshot:
    """Usage of the bench itself, the server side (the sandbox, or kube-apiserver and etcd) and every replica."""
    pids = {"bench": os.getpid(), **servers, **{r.name: r.process.pid for r in replicas}}
    found = {name: (pid, usage(pid)) for name, pid in pids.items()}
    return Snapshot(time.monotonic(), machine_busy_seconds(),
                    {name: (pid, u) for name, (pid, u) in found.items() if u is not None})


def cpu_report(before: Snapshot, after: Snapshot, steps: int, roles: dict[str, str]) -> dict[str, Any]:
    """CPU seconds and ms per transition of each process over a window, with the machine's busy time, so a reader
    sees where the cores went (``others`` is everything not measured: other users, py-spy)."""
    window = after.at - before.at
    report: dict[str, Any] = {}
    measured = 0.0
    for name, (pid, end) in after.processes.items():
        start_pid, start = before.processes.get(name, (pid, None))
        # A process restarted under the same name started from zero.
        cpu = end.cpu_seconds - (start.cpu_seconds if start is not None and start_pid == pid else 0.0)
        measured += cpu
        entry: dict[str, Any] = {"cpu_s": round(cpu, 2), "cpu_ms_per_step": round(1000 * cpu / steps, 3) if steps
                                 else None, "cores": round(cpu / window, 3) if window else None,
                                 "peak_rss_mib": round(end.peak_rss_mib, 1)}
        if name in roles:
            entry["role"] = roles[name]
        report[name] = entry
    busy = after.machine_busy_s - before.machine_busy_s
    report["machine"] = {"window_s": round(window, 1), "busy_s": round(busy, 2),
                         "busy_cores": round(busy / window, 3) if window else None,
                         "others_cpu_s": round(max(0.0, busy - measured), 2), "cores": os.cpu_count()}
    return report


async def roles_of(replicas: list[Replica], session: aiohttp.ClientSession, ha: bool) -> dict[str, str]:
    """``{replica name: leader | standby | single}``."""
    if not ha:
        return {r.name: "single" for r in replicas}
    leader = await leader_of(replicas, session, within=5)
    return {r.name: "leader" if r is leader else "standby" for r in replicas}


# -- one run ----------------------------------------------------------------------------------------------------


async def wait_until(progress: Progress, label: str, done: Callable[[], int], total: int,
                     limit: float) -> None:
    """Advance a progress bar until ``done()`` reaches ``total``; TimeoutError after ``limit`` seconds."""
    task = progress.add_task(label, total=total)
    try:
        async with asyncio.timeout(limit):
            while (count := done()) < total:
                progress.update(task, completed=count)
                await asyncio.sleep(_POLL)
        progress.update(task, completed=total)
    finally:
        progress.remove_task(task)


async def create_all(api: Api, names: dict[str, bool], args: argparse.Namespace, hook_url: str,
                     progress: Progress) -> None:
    """Every Deployment and Canary, ``--create-concurrency`` at a time (workers share one iterator, so thousands of
    objects never mean thousands of pending coroutines)."""
    task = progress.add_task(f"[{len(names)}] create", total=len(names))
    items = iter(names.items())

    async def worker() -> None:
        for name, failing in items:
            await api.create(DEPLOYMENTS, deployment(name, NAMESPACE, OLD_IMAGE))
            await api.create(CANARIES, canary(name, NAMESPACE, args.interval, args.step_weight,
                                              args.max_weight, hook_url if failing else None))
            progress.advance(task)

    await asyncio.gather(*(worker() for _ in range(args.create_concurrency)))
    progress.remove_task(task)


async def edit_all(api: Api, tracker: Tracker, image: str, spread: float) -> None:
    """Give every Deployment ``image`` with one JSON patch each, the edits spread evenly over ``spread`` seconds."""
    names = list(tracker.tracks)
    loop = asyncio.get_running_loop()
    start = loop.time()
    operations = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]

    async def edit(name: str) -> None:
        track = tracker.tracks[name]
        track.editing, track.edit_sent_at = True, time.time()
        await api.json_patch(f"{DEPLOYMENTS}/{name}", operations)
        track.edited_at = time.time()

    tasks = []
    for index, name in enumerate(names):
        delay = start + spread * index / len(names) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(edit(name)))
    await asyncio.gather(*tasks)


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


def per_canary(calls: dict[str, dict[str, int]], n: int) -> dict[str, dict[str, float]]:
    """Requests per canary by resource and verb (initialisation)."""
    return {resource: {verb: round(count / n, 3) for verb, count in verbs.items()}
            for resource, verbs in sorted(calls.items())}


@dataclass
class Run:
    """The processes and observers of one run."""

    n: int
    args: argparse.Namespace
    progress: Progress
    workdir: Path
    tracker: Tracker
    api: Api
    servers: dict[str, int]
    """The server side's processes by name: ``sandbox``, or ``kube-apiserver`` and ``etcd`` (--cluster real)."""
    replicas: list[Replica] = field(default_factory=list)
    baseline: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def real(self) -> bool:
        """Whether the cluster is a real control plane (no sandbox counters)."""
        return self.args.cluster == "real"

    @property
    def limit(self) -> float:
        """Seconds allowed per phase."""
        return phase_timeout(self.n, self.args)

    async def wait_finished(self, label: str) -> None:
        """Until every canary ended its release."""
        await wait_until(self.progress, f"[{self.n}] {label}",
                         lambda: self.tracker.count(lambda t: t.finished_at is not None), self.n, self.limit)

    async def reset_counters(self) -> None:
        """Zero the sandbox's counters and the bench's record of its own requests together (on a real cluster:
        remember the controllers' own request counters)."""
        if self.real:
            self.baseline = await bench_real.controller_requests(self.api.session, [r.port for r in self.replicas])
            return
        await self.api.request("DELETE", "/sandbox/counters")
        self.api.own.clear()

    async def controller_calls(self) -> dict[str, dict[str, int]]:
        """The controllers' API calls since the last reset: the sandbox's counters minus the bench's own requests,
        or on a real cluster the controllers' own counters."""
        if self.real:
            now = await bench_real.controller_requests(self.api.session, [r.port for r in self.replicas])
            return bench_real.difference(now, self.baseline)
        return subtract(await self.api.get("/sandbox/counters"), self.api.own)


async def initialise(run: Run, kubeconfig: str) -> dict[str, Any]:
    """Start the controller(s) and wait until every canary is Initialized; time and requests per canary."""
    await run.reset_counters()
    for index in range(2 if run.args.ha else 1):
        run.replicas.append(await start_controller(kubeconfig, run.workdir, index, run.args))
    started = time.time()
    await wait_until(run.progress, f"[{run.n}] initialise",
                     lambda: run.tracker.count(lambda t: t.phase == "Initialized"), run.n, run.limit)
    calls = await run.controller_calls()
    writes = sum(n for verbs in calls.values() for verb, n in verbs.items() if verb in WRITE_VERBS)
    reads = sum(n for verbs in calls.values() for verb, n in verbs.items() if verb in READ_VERBS)
    return {"initialisation_s": round(time.time() - started, 1),
            "initialisation_writes_per_canary": round(writes / run.n, 3),
            "initialisation_reads_per_canary": round(reads / run.n, 3),
            "initialisation_calls_per_canary": per_canary(calls, run.n)}


async def release(run: Run, names: dict[str, bool]) -> dict[str, Any]:
    """Release 1: detection, step lag, API calls, CPU, rollback (optionally profiled)."""
    tracker, args, n = run.tracker, run.args, run.n
    tracker.begin_release()
    roles = await roles_of(run.replicas, run.api.session, args.ha)
    await run.reset_counters()
    profiler = None
    if args.profile is not None:
        profiler = Profiler(args.profile / f"{n}-canaries", args.profile_format, args.profile_rate)
        for name, pid in [("bench", os.getpid()), *run.servers.items(),
                          *((r.name, r.process.pid) for r in run.replicas)]:
            await profiler.start(name, pid)
    before = snapshot(run.servers, run.replicas)
    await edit_all(run.api, tracker, NEW_IMAGE, args.interval)
    await run.wait_finished("release")
    after = snapshot(run.servers, run.replicas)
    profiles = await profiler.stop() if profiler is not None else None
    calls = await run.controller_calls()
    steps = sum(len(track.transitions) for track in tracker.tracks.values())
    detection = [max(0.0, t.detected_at - t.edited_at) for t in tracker.tracks.values()
                 if t.detected_at is not None and t.edited_at is not None]
    # From the moment the bench sent the edit: an upper bound that a slow acknowledgement cannot shrink.
    detection_sent = [t.detected_at - t.edit_sent_at for t in tracker.tracks.values()
                      if t.detected_at is not None and t.edit_sent_at is not None]
    started, persisted = step_lags(tracker, args.interval)
    rollbacks = [t.rolled_back_at - tracker.webhook_calls[name] for name, t in tracker.tracks.items()
                 if t.failing and t.rolled_back_at is not None and name in tracker.webhook_calls]
    cpu = cpu_report(before, after, steps, roles)
    controllers = [entry for name, entry in cpu.items() if name.startswith("controller-")]
    standby = [entry for entry in controllers if entry.get("role") == "standby"]
    result: dict[str, Any] = {
        "outcome": {"succeeded": tracker.count(lambda t: t.phase == "Succeeded"),
                    "failed": tracker.count(lambda t: t.phase == "Failed"),
                    "designed_to_fail": sum(names.values())},
        "detection": summary_ms(detection),
        "detection_from_send": summary_ms(detection_sent),
        "step_lag": summary_ms(started),
        "step_lag_persisted": summary_ms(persisted),
        "rollback": summary_ms(rollbacks),
        "steps": steps,
        "weight_steps": tracker.status_kinds[WEIGHT_STEP],
        "status_versions": sum(track.statuses for track in tracker.tracks.values()),
        "status_versions_by_kind": dict(tracker.status_kinds),
        "route_versions_by_kind": dict(tracker.route_kinds),
        "deployment_versions_by_kind": dict(tracker.deployment_kinds),
        "status_versions_halted_by_reason": dict(tracker.halts),
        "api_calls_per_step": per_step(calls, steps),
        "writes": write_accounting(calls, tracker.status_kinds, tracker.route_kinds, n, steps,
                                   after.at - before.at, tracker.deployment_kinds),
        "api_calls_total": calls,
        # Every replica counts (a standby's informers decode every event too); a replica that died does not.
        "controller_cpu_s_per_step": round(sum(e["cpu_s"] for e in controllers) / steps, 5) if steps else None,
        "controller_peak_rss_mib": max((e["peak_rss_mib"] for e in controllers), default=0.0),
        # The server side: the sandbox, or kube-apiserver and etcd.
        "server_cpu_s_per_step": round(sum(cpu[name]["cpu_s"] for name in run.servers if name in cpu) / steps, 5)
        if steps else None,
        "sandbox_cpu_s_per_step": round(cpu["sandbox"]["cpu_s"] / steps, 5) if steps and "sandbox" in cpu else None,
        "standby_cpu_s_per_step": round(sum(e["cpu_s"] for e in standby) / steps, 5) if steps and standby else None,
        "cpu": cpu,
    }
    result["targets"] = targets(result)
    if profiles is not None:
        result["profiles"] = profiles
    return result


async def run_once(n: int, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """One benchmark run with ``n`` canaries; its figures."""
    workdir = Path(tempfile.mkdtemp(prefix=f"flaggerpy-bench-{n}-"))
    failing_every = max(1, round(1 / args.rollback_fraction)) if args.rollback_fraction > 0 else 0
    names = {f"app-{i:05d}": bool(failing_every) and i % failing_every == failing_every - 1 for i in range(n)}
    tracker = Tracker(names)
    sandbox: asyncio.subprocess.Process | None = None
    real: bench_real.GatewayCluster | None = None
    if args.cluster == "real":
        real = await bench_real.start(workdir, NAMESPACE, n)
        url, kubeconfig, tls = real.plane.url, str(real.controller_kubeconfig), real.plane.admin_ssl()
        servers = bench_real.server_pids(real)
    else:
        sandbox, url, kubeconfig = await start_sandbox(workdir, n, args)
        tls, servers = None, {"sandbox": sandbox.pid}
    hook_runner, hook_url = await failing_webhook(tracker)
    watchers: list[asyncio.Task[None]] = []
    supervisor: asyncio.Task[None] | None = None
    restarts: list[str] = []
    replicas: list[Replica] = []
    result: dict[str, Any] = {"canaries": n, "interval_s": args.interval, "replicas": 2 if args.ha else 1,
                              "cluster": args.cluster,
                              "gateway": "traefik" if args.cluster == "real" else args.gateway,
                              "load_average_before": os.getloadavg(),
                              "phase_timeout_s": phase_timeout(n, args), "workdir": str(workdir)}
    try:
        async with Api(url, concurrency=max(32, args.create_concurrency), ssl=tls) as api:
            run = Run(n, args, progress, workdir, tracker, api, servers, replicas)
            listed = [asyncio.Event(), asyncio.Event(), asyncio.Event()]
            watchers = [asyncio.create_task(api.watch(CANARIES, tracker.on_canary, listed[0])),
                        asyncio.create_task(api.watch(HTTPROUTES, tracker.on_route, listed[1])),
                        asyncio.create_task(api.watch(DEPLOYMENTS, tracker.on_deployment, listed[2]))]
            await asyncio.gather(*(e.wait() for e in listed))
            created = time.time()
            await create_all(api, names, args, hook_url, progress)
            result["creation_s"] = round(time.time() - created, 1)
            supervisor = asyncio.create_task(supervise(replicas, kubeconfig, workdir, args, restarts))
            try:
                result.update(await initialise(run, kubeconfig))
                result.update(await release(run, names))
                if args.ha:
                    result["failover"] = await failover(run)
            except Exception as exc:  # keep what was measured; a --scale series goes on with the next size
                result["error"] = f"{type(exc).__name__}: {exc}"
                progress.console.log(f"[{n}] run failed: {result['error']} (logs in {workdir})")
            result["bench_watch_relists"] = api.relists
            result["controller_watch_reconnects"] = await watch_reconnects(replicas, api.session)
        for task in watchers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                result["bench_watch_error"] = repr(task.exception())
        result["controller_restarts"] = restarts
    finally:
        tasks = [*watchers, *([supervisor] if supervisor else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hook_runner.cleanup()
        for replica in replicas:
            await stop(replica.process)
        if sandbox is not None:
            await stop(sandbox)
        if real is not None:
            await asyncio.to_thread(real.stop)
    return result


async def failover(run: Run) -> dict[str, Any]:
    """Release 2: kill the leader once a third of the canaries made a step; time until a standby leads and until
    its first committed step; CPU of the replicas over the release."""
    tracker, args, n = run.tracker, run.args, run.n
    lease = args.lease_duration or _DEFAULT_LEASE_S
    tracker.begin_release()
    before = snapshot(run.servers, run.replicas)
    editing = asyncio.create_task(edit_all(run.api, tracker, THIRD_IMAGE, args.interval))
    await wait_until(run.progress, f"[{n}] failover: steps before the kill",
                     lambda: tracker.count(lambda t: bool(t.steps)), max(1, n // 3), run.limit)
    leader = await leader_of(run.replicas, run.api.session, within=30)
    if leader is None:
        await editing
        await run.wait_finished("failover: release (no leader found, nothing killed)")
        return {"error": "no replica reported leading within 30 s; nothing was killed"}
    leader.killed = True
    leader.process.kill()
    killed_at = time.time()
    # The live list: a survivor that exits meanwhile is restarted by the supervisor under a new name.
    new_leader = await leader_of(run.replicas, run.api.session, within=3 * lease + 30)
    elected_at = time.time()
    await editing
    await run.wait_finished("failover: release")
    after = snapshot(run.servers, run.replicas)
    lease_object = await run.api.get(lease_path(args))
    acquired = parse_time((lease_object.get("spec") or {}).get("acquireTime"))
    if acquired is not None and acquired <= killed_at:
        acquired = None  # the lease was not taken over (the killed replica was not the holder after all)
    # Nothing the killed leader sent can commit after the new leader acquired the lease (that takes a whole lease
    # duration), so the first status version after the acquisition is the new leader's; without it, a short guard.
    since = acquired if acquired is not None else killed_at + _KILL_GUARD
    first = min((t for t in tracker.status_events if t > since), default=None)
    roles = {leader.name: "killed leader", **({new_leader.name: "new leader"} if new_leader else {})}
    steps = sum(len(track.transitions) for track in tracker.tracks.values())
    return {
        "kill_to_lease_acquired_s": None if acquired is None else round(acquired - killed_at, 2),
        "kill_to_new_leader_s": round(elected_at - killed_at, 2) if new_leader else None,
        "kill_to_first_step_s": None if first is None else round(first - killed_at, 2),
        "all_finished": tracker.count(lambda t: t.finished_at is not None) == n,
        "outcome": {"succeeded": tracker.count(lambda t: t.phase == "Succeeded"),
                    "failed": tracker.count(lambda t: t.phase == "Failed")},
        "cpu": cpu_report(before, after, steps, roles),
        "note": f"bounded below by the Lease ({lease:g} s): a killed leader cannot release it",
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested scale, one after the other."""
    console = Console(stderr=True)
    runs = []
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
                              "argv": sys.argv[1:]}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, refresh_per_second=2) as progress:
        for n in args.scale:
            runs.append(await run_once(n, args, progress))
            console.log(f"{n} canaries done: {json.dumps({k: v for k, v in runs[-1].items() if k != 'cpu'})}")
    report["runs"] = runs
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
    parser.add_argument("--kubeconfig-qps", type=float, default=-1,
                        help="the controllers' client rate limit (default -1: off, so the figures measure the engine; "
                             "Flagger's and flaggerpy's default is 100 and caps 1,000 canaries at 30 s near it)")
    parser.add_argument("--kubeconfig-burst", type=int, default=250, help="the controllers' client burst (default 250)")
    parser.add_argument("--no-ha", dest="ha", action="store_false",
                        help="one controller replica, no leader election, no failover figure")
    parser.add_argument("--lease-duration", type=float, help="HA: the controllers' lease duration (default theirs)")
    parser.add_argument("--renew-deadline", type=float, help="HA: the controllers' renew deadline (default theirs)")
    parser.add_argument("--retry-period", type=float, help="HA: the controllers' retry period (default theirs)")
    parser.add_argument("--gateway", choices=["instant", "dataplane"], default="dataplane",
                        help="HTTPRoute acceptance by the sandbox data plane (default) or an instant stand-in Gateway")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed per phase (default 300 + interval * (steps + 4) + 0.5 * canaries)")
    parser.add_argument("--cluster", choices=["sandbox", "real"], default="sandbox",
                        help="the sandbox (default) or a real control plane from hack/cluster (built with "
                             "hack/cluster/build), with Traefik accepting the routes")
    parser.add_argument("--sandbox-history", type=int, default=None,
                        help="watch events the sandbox keeps for resuming watches (default max(500000, 100 * N))")
    parser.add_argument("--create-concurrency", type=int, default=16,
                        help="Deployments and Canaries created at once before the controller starts (default 16)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy the sandbox, every controller and the bench during the measured release into "
                             "DIR/<N>-canaries/<process>.<format>")
    parser.add_argument("--profile-format", choices=sorted(PROFILE_FORMATS), default="speedscope",
                        help="py-spy output: speedscope (open at speedscope.app), flamegraph (SVG) or raw "
                             "(collapsed stacks) (default speedscope)")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (default 100)")
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
    if args.timeout is not None and args.timeout <= 0:
        problems.append("--timeout: must be > 0")
    if args.sandbox_history is not None and args.sandbox_history < 1000:
        problems.append("--sandbox-history: must be >= 1000")
    if args.create_concurrency < 1:
        problems.append("--create-concurrency: must be >= 1")
    if args.profile_rate < 1:
        problems.append("--profile-rate: must be >= 1")
    for flag in ("lease_duration", "renew_deadline", "retry_period"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            problems.append(f"--{flag.replace('_', '-')}: must be > 0")
    if args.profile is not None and not Profiler.available():
        problems.append("--profile: py-spy is not installed (pip install py-spy)")
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
