"""``flaggerpy dashboard`` as a user runs it: it prints its address, serves the page, stops on Ctrl-C; bad flags
exit 2 naming the flag, a port in use exits 1 saying so."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import pytest

from flaggerpy.cli import main
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster
from tests.manifests import canary, deployment
from tests.ports import free_port


async def test_the_command_prints_its_url_serves_the_list_and_stops_on_ctrl_c(
    sandbox: Sandbox, cluster: Cluster,
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "dashboard", "--kubeconfig", str(sandbox.kubeconfig_path),
        "--port", str(port), "--read-only", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line == f"flaggerpy dashboard (read-only): http://127.0.0.1:{port}/\n"
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/stream") as stream:
            first = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
            data = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
            assert first == "event: snapshot\n" and '"key":"test/podinfo"' in data
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 130
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_flags_exit_2_naming_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--port", "70000"]) == 2
    assert "--port: must be between 0 and 65535, not 70000" in capsys.readouterr().err
    assert main(["dashboard", "-n", "Bad_NS"]) == 2
    assert "-n/--namespace 'Bad_NS': not a valid namespace name" in capsys.readouterr().err


async def test_a_port_in_use_is_named(sandbox: Sandbox) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flaggerpy.cli", "dashboard", "--kubeconfig", str(sandbox.kubeconfig_path),
            "--port", str(port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert f"error: --port {port}: cannot listen on 127.0.0.1" in err.decode()
