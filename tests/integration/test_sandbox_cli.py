"""``flaggerpy sandbox``: starts, prints how to reach it, serves kubectl-compatible API, exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import yaml


async def test_sandbox_command_serves_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "sandbox", "--kubeconfig", str(kubeconfig), "--no-dataplane",
        "--log-level", "warning", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first.startswith("sandbox API server: http://127.0.0.1:")
        second = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert second.strip() == f"kubeconfig: {kubeconfig}"
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "flaggerpy-sandbox"
        server = config["clusters"][0]["cluster"]["server"]
        assert server == first.split(": ", 1)[1].strip()
        async with aiohttp.ClientSession() as http, http.get(f"{server}/api/v1/namespaces/default") as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_bad_options_exit_2() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "sandbox", "--ready-delay", "-1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"--ready-delay" in err
