"""50 canaries release at once while the cluster misbehaves and controller replicas die.

The sandbox answers 10% of API requests with 500, 10% of writes with 409, drops every watch every few seconds and
answers re-watches with 410 Gone; two ``flaggerpy run`` replicas with leader election run as processes and one of
them is SIGKILLed at random every few seconds (and started again). Two in five canaries are designed to fail their
analysis (their rollout webhook refuses), the rest to pass.

The same fifty releases (same manifests, webhook verdicts and seed) first run on a healthy sandbox with the same two
replicas and nothing killed; that run's outcome per canary (terminal phase, primary image, HTTPRoute spec) is the
reference the chaos run must reproduce exactly. In both runs an observer inside the sandbox checks invariants 1-4 of
design.md on every committed version.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from flaggerpy.sandbox import Rule, Sandbox
from tests.chaos.invariants import InvariantObserver, image_of, report, weights_of
from tests.e2e.release_harness import GATEWAY_GROUP, Subprocess, flaggerpy_argv
from tests.manifests import GATEWAY_NAMESPACE, NAMESPACE, canary, crd_documents, deployment, gateway
from tests.ports import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.asyncio(loop_scope="module")]

CANARIES = 50
OLD_IMAGE, NEW_IMAGE = "podinfo:1.0.0", "podinfo:1.0.1"
STEP_WEIGHT, MAX_WEIGHT = 10, 50
# A bound for a stuck release, not a performance target: a loaded 2-core machine needs well over twice the quiet time.
RELEASE_TIMEOUT = 240.0
# Short leases, so a SIGKILLed leader is replaced in seconds rather than client-go's fifteen; the renew deadline
# still leaves several retries through the injected 500s and 409s.
LEASE = ["--leader-election-lease-duration", "4", "--leader-election-renew-deadline", "3",
         "--leader-election-retry-period", "0.5"]
SEED = 20261122
NAMES = [f"app-{i:02d}" for i in range(CANARIES)]
WATCHED = ("canaries.flagger.app", "deployments.apps", "services", "httproutes.gateway.networking.k8s.io")
# Two in five canaries fail their analysis: their rollout webhook refuses.
FAILING = frozenset(name for i, name in enumerate(NAMES) if i % 5 in (1, 3))


async def gate_server(failing: frozenset[str]) -> tuple[web.AppRunner, str]:
    """A rollout webhook: 500 for the canaries in ``failing``, 200 for the others."""
    async def hook(request: web.Request) -> web.Response:
        payload = await request.json()
        return web.Response(status=500 if payload.get("name") in failing else 200)

    app = web.Application()
    app.router.add_post("/", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/"


class Replicas:
    """Two controller processes with leader election; ``kill_one`` SIGKILLs one at random and starts a new one."""

    def __init__(self, kubeconfig: Path, workdir: Path, rng: random.Random) -> None:
        self._kubeconfig = kubeconfig
        self._workdir = workdir
        self._rng = rng
        self.live: list[Subprocess] = []
        self.started = 0
        self.kills = 0
        self.logs: list[Subprocess] = []
        self.crashes: list[str] = []

    async def start_one(self) -> None:
        """Start one more replica."""
        self.started += 1
        replica = Subprocess(f"replica-{self.started}", flaggerpy_argv(
            "run", "--kubeconfig", str(self._kubeconfig), "--namespace", NAMESPACE,
            "--enable-leader-election", "--leader-election-namespace", NAMESPACE, *LEASE,
            "--metrics-server", "http://127.0.0.1:9", "--threadiness", "4", "--port", str(free_port()),
            "--listen-address", "127.0.0.1", "--log-level", "warning"), self._workdir / f"replica-{self.started}.log")
        await replica.start()
        self.live.append(replica)
        self.logs.append(replica)

    async def supervise(self) -> None:
        """Restart replicas that exited on their own, as Kubernetes would (a leader that lost its lease exits)."""
        while True:
            await asyncio.sleep(0.2)
            for replica in [r for r in self.live if r.process is not None and r.process.returncode is not None]:
                self.live.remove(replica)
                code = replica.process.returncode if replica.process is not None else None
                if code != 1 or "leadership lost" not in replica.tail():
                    self.crashes.append(f"{replica.name} exited {code}:\n{replica.tail()}")
                await self.start_one()

    async def kill_one(self) -> None:
        """SIGKILL a random replica (no graceful lease release) and start a replacement."""
        victim = self._rng.choice(self.live)
        self.live.remove(victim)
        assert victim.process is not None
        victim.process.kill()
        await victim.process.wait()
        self.kills += 1
        await self.start_one()

    async def stop(self) -> None:
        """Stop every live replica gracefully."""
        for replica in self.live:
            await replica.stop()


@contextlib.asynccontextmanager
async def prepared_sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with the CRDs, the namespaces and a Gateway."""
    async with Sandbox(ready_delay=0.05, bookmark_interval=1.0, history_size=200_000) as sb:
        for doc in crd_documents():
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        for namespace in (NAMESPACE, GATEWAY_NAMESPACE):
            await sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
        await sb.cluster.create(GATEWAY_GROUP, "gateways", gateway())
        yield sb


def inject_faults(sb: Sandbox) -> None:
    """10% 5xx, 10% 409 on writes, watches dropped every 3 s."""
    sb.faults.errors = [Rule(verb="*", resource="*", rate=0.1, code=500)]
    sb.faults.conflicts = [Rule(verb="*", resource="*", rate=0.1)]
    sb.faults.drop_watches_every = 3.0


async def chaos_monkey(sb: Sandbox, replicas: Replicas, rng: random.Random) -> None:
    """Every 4-7 s: force 410 Gone on the next re-watches, and kill a replica."""
    while True:
        await asyncio.sleep(rng.uniform(4.0, 7.0))
        for resource in WATCHED:
            sb.faults.force_gone(resource)
        await replicas.kill_one()


@dataclass(frozen=True)
class Outcome:
    """How a canary's release ended: its terminal phase, the primary's image and the HTTPRoute's spec."""

    phase: str
    primary_image: str | None
    route: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.phase}, primary {self.primary_image}, route weights {weights_of({'spec': self.route})}"


@dataclass
class Run:
    """One release of the fifty canaries: what the observer saw, the replicas' fate and each canary's outcome."""

    name: str
    observer: InvariantObserver
    replicas: Replicas
    outcomes: dict[str, Outcome]


async def release_fifty(workdir: Path, *, chaos: bool) -> Run:
    """Release the fifty canaries on a fresh sandbox with two replicas; with ``chaos``, faults and kills too.

    Both runs use the same manifests, the same webhook verdicts and the same seed, so the only difference
    between them is the misbehaving cluster.
    """
    run = "chaos" if chaos else "fault-free"
    rng = random.Random(SEED)
    async with prepared_sandbox() as sb:
        hooks, hook_url = await gate_server(FAILING)
        analysis: dict[str, Any] = {
            "interval": "1s", "threshold": 2, "stepWeight": STEP_WEIGHT, "maxWeight": MAX_WEIGHT,
            "webhooks": [{"name": "gate", "type": "rollout", "url": hook_url, "timeout": "5s"}]}
        for name in NAMES:
            await sb.cluster.create("apps", "deployments", deployment(name, OLD_IMAGE))
            await sb.cluster.create("flagger.app", "canaries", canary(name, analysis))
        observer = InvariantObserver(sb, NAMESPACE, dict.fromkeys(NAMES, MAX_WEIGHT), OLD_IMAGE, run)
        observer.start()
        replicas = Replicas(sb.kubeconfig_path, workdir, rng)
        monkey: asyncio.Task[None] | None = None
        for _ in range(2):
            await replicas.start_one()
        supervisor = asyncio.create_task(replicas.supervise())
        try:
            await _wait(observer, lambda: all(observer.phase(n) == "Initialized" for n in NAMES), RELEASE_TIMEOUT,
                        f"{run} initialisation", replicas)
            if chaos:
                inject_faults(sb)
                monkey = asyncio.create_task(chaos_monkey(sb, replicas, rng))
            for name in NAMES:
                dep = copy.deepcopy(sb.cluster.get("apps", "deployments", NAMESPACE, name))
                dep["metadata"].pop("resourceVersion", None)
                dep["spec"]["template"]["spec"]["containers"][0]["image"] = NEW_IMAGE
                await sb.cluster.update("apps", "deployments", dep)
            await _wait(observer, lambda: all(observer.finished(n) for n in NAMES), RELEASE_TIMEOUT,
                        f"{run} release", replicas)
        finally:
            for task in (monkey, supervisor):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            sb.faults.clear()
            await observer.stop()
            await replicas.stop()
            await hooks.cleanup()
        outcomes = {name: Outcome(observer.phase(name),
                                  image_of(sb.cluster.get("apps", "deployments", NAMESPACE, f"{name}-primary")),
                                  (sb.cluster.get(GATEWAY_GROUP, "httproutes", NAMESPACE, name) or {}).get("spec")
                                  or {})
                    for name in NAMES}
    return Run(run, observer, replicas, outcomes)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fault_free(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The fifty releases on a healthy cluster: the reference every chaos outcome is compared with."""
    return await release_fifty(tmp_path_factory.mktemp("fault-free"), chaos=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chaotic(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The same fifty releases while the cluster misbehaves and replicas are killed."""
    return await release_fifty(tmp_path_factory.mktemp("chaos"), chaos=True)


def _assert_invariants(run: Run) -> None:
    assert run.observer.versions > 0, f"{run.name}: the observer saw no versions"
    assert not run.observer.violations, report(run.observer.violations)
    problems = run.observer.history_problems(STEP_WEIGHT)
    assert not problems, report(problems)


async def test_fault_free_run_holds_the_invariants_and_ends_as_designed(fault_free: Run) -> None:
    assert not fault_free.replicas.crashes, fault_free.replicas.crashes
    _assert_invariants(fault_free)
    # The reference only means something if it has both kinds of ending: failing gates fail, the others promote.
    phases = {name: outcome.phase for name, outcome in fault_free.outcomes.items()}
    assert phases == {name: "Failed" if name in FAILING else "Succeeded" for name in NAMES}
    assert not fault_free.observer.repeated_steps, fault_free.observer.repeated_steps


async def test_chaos_run_holds_the_invariants_at_every_version(chaotic: Run) -> None:
    assert chaotic.replicas.kills >= 2, f"only {chaotic.replicas.kills} replicas were killed: too short to mean much"
    assert not chaotic.replicas.crashes, chaotic.replicas.crashes
    _assert_invariants(chaotic)


async def test_every_canary_ends_as_in_the_fault_free_run(fault_free: Run, chaotic: Run) -> None:
    different = [f"{name}: fault-free {fault_free.outcomes[name]}; chaos {chaotic.outcomes[name]}"
                 for name in NAMES if chaotic.outcomes[name] != fault_free.outcomes[name]]
    assert not different, "\n".join(different)
    for name in NAMES:
        calm, wild = fault_free.observer.seen[name], chaotic.observer.seen[name]
        assert wild.primary_images == calm.primary_images, (name, calm.primary_images, wild.primary_images)
        assert wild.promotions == calm.promotions, (name, calm.phases, wild.phases)


async def _wait(observer: InvariantObserver, done: Any, within: float, what: str, replicas: Replicas) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done():
        if loop.time() > deadline:
            phases = {name: (seen.phases[-2:], seen.canary_weights[-3:]) for name, seen in observer.seen.items()
                      if not observer.finished(name)}
            logs = "\n".join(r.tail(1500) for r in replicas.logs[-2:])
            raise AssertionError(f"{what} not done in {within}s; unfinished: {phases}\n{logs}")
        observer.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(observer.changed.wait(), 1.0)
