"""The probes deploy/ points the kubelet at: /readyz stays 503 until the caches have synced while /healthz already
answers 200, so a replica takes traffic (and counts as available for the PodDisruptionBudget) only once warm."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import yaml

from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.apiserver.faults import Rule
from tests.paths import REPO_ROOT
from tests.ports import free_port

DEPLOYMENT = REPO_ROOT / "deploy" / "controller" / "deployment.yaml"


async def _status(session: aiohttp.ClientSession, port: int, path: str) -> int | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=1)) as resp:
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return None


async def test_readyz_waits_for_the_caches_and_healthz_does_not(sandbox: Sandbox) -> None:
    container = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == (
        "/healthz", "/readyz")
    # The Canary list is slow: the caches cannot sync for a few seconds.
    sandbox.faults.latency = [Rule(verb="list", resource="canaries", seconds=3.0)]
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "run", "--kubeconfig", str(sandbox.kubeconfig_path),
        "--listen-address", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        env={**os.environ}, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=REPO_ROOT,
    )
    seen: list[tuple[int | None, int | None]] = []
    try:
        async with aiohttp.ClientSession() as session:
            async def sample() -> bool:
                seen.append((await _status(session, port, "/healthz"), await _status(session, port, "/readyz")))
                return seen[-1] == (200, 200)

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not await sample():
                assert loop.time() < deadline, seen[-5:]
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
        sandbox.faults.latency = []
    assert (200, 503) in seen, f"never alive-but-not-ready while the caches synced: {sorted(set(seen), key=str)}"
