"""The cluster commands on a real terminal (tmux) and piped: ``get --watch`` while the API server goes away and
comes back, and what ``get`` and ``status`` show a person about suspension, images and a failed query."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flaggerpy.sandbox import Sandbox
from tests import tmux
from tests.integration.conftest import Cluster
from tests.integration.test_ctl_commands import GROUP, PLURAL, put_canary
from tests.integration.test_ctl_newcomer import put_release
from tests.manifests import NAMESPACE
from tests.paths import REPO_ROOT
from tests.ports import free_port

needs_tmux = pytest.mark.skipif(not tmux.AVAILABLE, reason=tmux.SKIP_REASON)
LOST = "connection to the API server lost at"


class Outage:
    """A TCP forwarder in front of the sandbox: ``cut()`` makes the API server vanish (connections reset, the port
    refuses new ones), ``restore()`` brings it back on the same port, as a restarted control plane would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            await asyncio.gather(self._copy(reader, up_writer), self._copy(up_reader, writer))
        finally:
            self._pipes.discard(task)
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
async def outage(sandbox: Sandbox) -> AsyncIterator[Outage]:
    proxy = Outage(sandbox.port)
    await proxy.restore()
    yield proxy
    if proxy._server is not None:
        await proxy.cut()


def kubeconfig_via(proxy: Outage, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{proxy.port}'}}}}]\n"
        f"contexts: [{{name: c, context: {{cluster: c, user: u, namespace: {NAMESPACE}}}}}]\n"
        "users: [{name: u, user: {}}]\n"
    )
    return path


@needs_tmux
async def test_watch_shows_a_lost_connection_with_the_last_update_and_reconnects(
    cluster: Cluster, outage: Outage, tmp_path: Path
) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing", "canaryWeight": 20})
    pane = tmux.Pane(tmp_path, [sys.executable, "-m", "flaggerpy.cli", "get", "canaries", "--watch",
                                "--kubeconfig", str(kubeconfig_via(outage, tmp_path))])
    try:
        await pane.wait_for(lambda s: "Progressing" in s and "20%" in s)
        await outage.cut()
        lost = await pane.wait_for(lambda s: LOST in s)
        # The last state stays on screen, marked stale, with when the connection went and when data last came.
        assert "Progressing" in lost
        line = next(line for line in lost.splitlines() if LOST in line)
        assert "(last update " in line and line.endswith("reconnecting...")

        await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"canaryWeight": 30})
        await outage.restore()
        back = await pane.wait_for(lambda s: "30%" in s and LOST not in s)
        assert "Progressing" in back
    finally:
        pane.close()


async def test_piped_watch_says_on_stderr_that_the_connection_was_lost_and_is_back(
    cluster: Cluster, outage: Outage, tmp_path: Path
) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing", "canaryWeight": 20})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "get", "canaries", "--watch",
        "--kubeconfig", str(kubeconfig_via(outage, tmp_path)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            await proc.stdout.readline()  # the header
            assert (await proc.stdout.readline()).split()[:3] == [b"podinfo", b"Progressing", b"20"]
            await outage.cut()
            lost = (await proc.stderr.readline()).decode()
            assert lost.startswith(LOST) and "(last update " in lost
            await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"canaryWeight": 30})
            await outage.restore()
            assert (await proc.stderr.readline()).decode().startswith("reconnected to the API server at ")
            assert (await proc.stdout.readline()).split()[:3] == [b"podinfo", b"Progressing", b"30"]
    finally:
        proc.terminate()
        await proc.wait()


@needs_tmux
async def test_get_and_status_on_a_terminal(sandbox: Sandbox, cluster: Cluster, tmp_path: Path) -> None:
    unreachable = "Prometheus unreachable: cannot reach http://prometheus.monitoring:9090: ClientConnectorError"
    await put_release(cluster, {"phase": "Progressing", "canaryWeight": 10, "metricHistory": [
        {"iteration": 0, "weight": 10, "name": "request-success-rate", "passed": False,
         "time": "2026-11-22T01:06:00Z", "error": unreachable}]}, suspend=True)
    await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
    kubeconfig = str(sandbox.kubeconfig_path)
    for argv, expected in (
        (["get", "canaries", "-n", NAMESPACE], ["SUSPENDED", "true", "a new revision is waiting"]),
        (["status", "podinfo", "-n", NAMESPACE], ["revision podinfod=ghcr.io/stefanprodan/podinfo:6.0.2",
                                                   "primary podinfod=ghcr.io/stefanprodan/podinfo:6.0.0",
                                                   "Prometheus unreachable: cannot reach", "Suspended"]),
    ):
        pane = tmux.Pane(tmp_path / argv[0], [sys.executable, "-m", "flaggerpy.cli", *argv, "--kubeconfig",
                                              kubeconfig], width=200)
        try:
            shown = await pane.wait_for(lambda s: "[exit " in s)
        finally:
            pane.close()
        # A wide terminal: nothing is cut, so the screen holds each fact whole.
        text = " ".join(shown.split())
        assert "[exit 0]" in text, shown
        for fact in expected:
            assert fact in text, (fact, shown)
