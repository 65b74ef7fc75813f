"""50 canaries release at once while the cluster misbehaves and controller replicas die.

The sandbox answers 10% of API requests with 500, 10% of writes with 409, drops every watch every few seconds and
answers re-watches with 410 Gone; two ``flaggerpy run`` replicas with leader election run as processes and one of
them is SIGKILLed at random every few seconds (and started again). Two in five canaries are designed to fail their
analysis (their rollout webhook refuses), the rest to pass. Each must end as it would on a healthy cluster, and an
observer inside the sandbox checks invariants 1-4 of design.md on every committed version.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flaggerpy.sandbox import Rule, Sandbox
from tests.chaos.invariants import InvariantObserver
from tests.e2e.prometheus_fixture import free_port
from tests.e2e.release_harness import GATEWAY_GROUP, Subprocess, flaggerpy_argv
from tests.manifests import GATEWAY_NAMESPACE, NAMESPACE, canary, crd_documents, deployment, gateway

pytestmark = pytest.mark.chaos

CANARIES = 50
OLD_IMAGE, NEW_IMAGE = "podinfo:1.0.0", "podinfo:1.0.1"
STEP_WEIGHT, MAX_WEIGHT = 10, 50
RELEASE_TIMEOUT = 150.0
# Short leases, so a SIGKILLed leader is replaced in seconds rather than client-go's fifteen; the renew deadline
# still leaves several retries through the injected 500s and 409s.
LEASE = ["--leader-election-lease-duration", "4", "--leader-election-renew-deadline", "3",
         "--leader-election-retry-period", "0.5"]
WATCHED = ("canaries.flagger.app", "deployments.apps", "services", "httproutes.gateway.networking.k8s.io")


def designed_to_fail(index: int) -> bool:
    """Two in five canaries fail their analysis."""
    return index % 5 in (1, 3)


async def gate_server(failing: set[str]) -> tuple[web.AppRunner, str]:
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



@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
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


async def test_fifty_canaries_survive_faults_and_killed_leaders(sandbox: Sandbox, tmp_path: Path) -> None:
    sb, rng = sandbox, random.Random(20261122)
    names = [f"app-{i:02d}" for i in range(CANARIES)]
    failing = {name for i, name in enumerate(names) if designed_to_fail(i)}
    hooks, hook_url = await gate_server(failing)
    analysis: dict[str, Any] = {"interval": "1s", "threshold": 2, "stepWeight": STEP_WEIGHT, "maxWeight": MAX_WEIGHT,
                                "webhooks": [{"name": "gate", "type": "rollout", "url": hook_url, "timeout": "5s"}]}
    for name in names:
        await sb.cluster.create("apps", "deployments", deployment(name, OLD_IMAGE))
        await sb.cluster.create("flagger.app", "canaries", canary(name, analysis))
    observer = InvariantObserver(sb, NAMESPACE, dict.fromkeys(names, MAX_WEIGHT), OLD_IMAGE)
    observer.start()
    replicas = Replicas(sb.kubeconfig_path, tmp_path, rng)
    monkey: asyncio.Task[None] | None = None
    for _ in range(2):
        await replicas.start_one()
    supervisor = asyncio.create_task(replicas.supervise())
    try:
        await _wait(observer, lambda: all(observer.phase(n) == "Initialized" for n in names), RELEASE_TIMEOUT,
                    "initialisation", replicas)
        inject_faults(sb)
        monkey = asyncio.create_task(chaos_monkey(sb, replicas, rng))
        for name in names:
            dep = copy.deepcopy(sb.cluster.get("apps", "deployments", NAMESPACE, name))
            dep["metadata"].pop("resourceVersion", None)
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = NEW_IMAGE
            await sb.cluster.update("apps", "deployments", dep)
        await _wait(observer, lambda: all(observer.finished(n) for n in names), RELEASE_TIMEOUT, "release", replicas)
    finally:
        for task in (monkey, supervisor):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        sb.faults.clear()
        await observer.stop()
        await replicas.stop()
        await hooks.cleanup()

    assert replicas.kills >= 2, f"only {replicas.kills} replicas were killed: the run was too short to mean much"
    assert not replicas.crashes, replicas.crashes
    outcome = {name: observer.phase(name) for name in names}
    expected = {name: "Failed" if name in failing else "Succeeded" for name in names}
    assert outcome == expected
    assert not observer.violations, "\n".join(observer.violations[:20])
    assert not observer.history_problems(STEP_WEIGHT), "\n".join(observer.history_problems(STEP_WEIGHT)[:20])
    for name in names:
        seen = observer.seen[name]
        if name in failing:
            assert seen.primary_images == [OLD_IMAGE], (name, seen.primary_images)
            assert seen.promotions == 0
        else:
            assert seen.primary_images == [OLD_IMAGE, NEW_IMAGE], (name, seen.primary_images)
            assert seen.canary_weights[-3:] == [40, 50, 0], (name, seen.canary_weights)
            assert seen.promotions == 1


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
