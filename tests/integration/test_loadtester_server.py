"""The load tester answers Flagger's webhooks like flagger-loadtester: commands, gates, namespaces."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.loadtester.server import RUNNER, create_app
from tests.integration.conftest import wait_for
from tests.tools import needs_hey

Factory = Callable[..., Any]


@pytest.fixture
async def make_client() -> AsyncIterator[Factory]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        config = LoadtesterConfig(host="127.0.0.1", port=0, kill_grace=0.5, **overrides)
        client = TestClient(TestServer(create_app(config)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (killed, not yet reaped by init) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def hook(metadata: dict[str, str] | None = None, name: str = "podinfo", namespace: str = "test") -> dict[str, Any]:
    payload: dict[str, Any] = {"name": name, "namespace": namespace, "phase": "Progressing", "checksum": "abc"}
    if metadata is not None:
        payload["metadata"] = metadata
    return payload


async def test_healthz(make_client: Factory) -> None:
    client = await make_client()
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_background_command_runs_and_answers_accepted(make_client: Factory, tmp_path: Path) -> None:
    client = await make_client()
    marker = tmp_path / "ran"
    resp = await client.post("/", json=hook({"cmd": f"echo hello > {marker}"}))
    assert resp.status == 202
    await client.app[RUNNER].wait_idle()
    assert marker.read_text() == "hello\n"


async def test_identical_running_command_is_not_started_twice(make_client: Factory, tmp_path: Path) -> None:
    client = await make_client()
    log = tmp_path / "starts"
    command = f"echo start >> {log}; sleep 30"
    first = await client.post("/", json=hook({"type": "cmd", "cmd": command}))
    second = await client.post("/", json=hook({"type": "cmd", "cmd": command}))
    other_canary = await client.post("/", json=hook({"cmd": command}, name="other"))
    assert (first.status, second.status, other_canary.status) == (202, 202, 202)
    assert await second.text() == "already running\n"
    assert len(client.app[RUNNER].running()) == 2


async def test_shutdown_kills_running_commands_and_their_children(make_client: Factory, tmp_path: Path) -> None:
    client = await make_client()
    pid_file = tmp_path / "pid"
    # The shell forks `sleep` as a child, so this checks the whole process group is stopped.
    resp = await client.post("/", json=hook({"cmd": f"sleep 30 & echo $! > {pid_file}; wait"}))
    assert resp.status == 202
    for _ in range(500):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.01)
    child = int(pid_file.read_text())
    await client.close()
    # The shutdown waited for the shell and signalled its whole group; the grandchild dies once the kernel schedules
    # it to take the signal, which on a loaded machine can be a moment after the shell was reaped.
    await wait_for(lambda: not alive(child), 5, lambda: f"the command's child {child} outlived the shutdown")


async def test_bash_blocks_and_maps_exit_code_to_status(make_client: Factory) -> None:
    client = await make_client()
    ok = await client.post(
        "/", json=hook({"type": "bash", "cmd": "echo -n out; [[ 1 == 1 ]]", "returnCmdOutput": "true"})
    )
    assert ok.status == 200
    assert await ok.text() == "out"
    quiet = await client.post("/", json=hook({"type": "bash", "cmd": "echo out"}))
    assert (quiet.status, await quiet.text()) == (200, "")
    failed = await client.post("/", json=hook({"type": "bash", "cmd": "echo broken >&2; exit 3"}))
    assert failed.status == 500
    body = await failed.text()
    assert "exit code 3" in body
    assert "broken" in body


async def test_bash_honours_the_timeout(make_client: Factory) -> None:
    client = await make_client(timeout=0.3)
    resp = await client.post("/", json=hook({"type": "bash", "cmd": "sleep 30"}))
    assert resp.status == 500
    assert "timed out" in await resp.text()


async def test_missing_binary_is_a_clear_failure(make_client: Factory) -> None:
    client = await make_client()
    if shutil.which("helm"):
        pytest.skip("helm is installed here; the missing-binary path cannot be shown with it")
    resp = await client.post("/", json=hook({"type": "helm", "cmd": "version"}))
    assert resp.status == 500
    assert "cannot start 'helm'" in await resp.text()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "body: not valid JSON"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b'{"name": "podinfo", "namespace": "test"}', "metadata not found in payload"),
        (b'{"name": "p", "namespace": "t", "metadata": {"cmd": 5}}', "metadata.cmd: must be a string"),
        (b'{"name": "p", "namespace": "t", "metadata": {"type": "concord", "cmd": "x"}}', "metadata.type: unknown"),
        (b'{"name": "p", "namespace": "t", "metadata": {"type": "bash"}}', "metadata.cmd: required"),
        (
            b'{"name": "p", "namespace": "t", "metadata": {"cmd": "x", "logCmdOutput": "yes"}}',
            "metadata.logCmdOutput: 'yes' is not a boolean",
        ),
        (b'{"name": 1, "namespace": "t", "metadata": {"cmd": "x"}}', "name: must be a string"),
    ],
)
async def test_bad_payloads_are_refused_with_the_field(make_client: Factory, body: bytes, expected: str) -> None:
    client = await make_client()
    resp = await client.post("/", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert expected in await resp.text()


@pytest.mark.parametrize("family", ["gate", "rollback"])
async def test_gates_open_close_and_check_per_canary(make_client: Factory, family: str) -> None:
    client = await make_client()

    async def check(name: str = "podinfo", namespace: str = "test") -> int:
        return (await client.post(f"/{family}/check", json=hook(name=name, namespace=namespace))).status

    assert await check() == 403
    assert (await client.post(f"/{family}/open", json=hook())).status == 202
    assert await check() == 200
    assert await check(name="other") == 403
    assert await check(namespace="prod") == 403
    assert (await client.post(f"/{family}/close", json=hook())).status == 202
    assert await check() == 403


async def test_approval_and_rollback_gates_are_separate(make_client: Factory) -> None:
    client = await make_client()
    await client.post("/rollback/open", json=hook())
    assert (await client.post("/gate/check", json=hook())).status == 403
    assert (await client.post("/rollback/check", json=hook())).status == 200


async def test_fixed_gates(make_client: Factory) -> None:
    client = await make_client()
    assert (await client.post("/gate/approve", json=hook())).status == 200
    assert (await client.post("/gate/halt", json=hook())).status == 403


async def test_namespace_regexp_refuses_other_namespaces(make_client: Factory, tmp_path: Path) -> None:
    client = await make_client(namespace_regexp=re.compile(r"^(test|staging)$"))
    marker = tmp_path / "ran"
    refused = await client.post("/", json=hook({"cmd": f"touch {marker}"}, namespace="prod"))
    assert refused.status == 403
    assert "'prod'" in await refused.text()
    assert (await client.post("/gate/open", json=hook(namespace="prod"))).status == 403
    assert (await client.post("/rollback/check", json=hook(namespace="prod"))).status == 403
    allowed = await client.post("/", json=hook({"type": "bash", "cmd": f"touch {marker}"}, namespace="staging"))
    assert allowed.status == 200
    assert marker.exists()


@dataclass
class Target:
    """A local HTTP service standing in for podinfo; counts the requests it answers."""

    url: str
    hits: int = 0


@pytest.fixture
async def podinfo() -> AsyncIterator[Target]:
    state = Target(url="")

    async def answer(_: web.Request) -> web.Response:
        state.hits += 1
        return web.Response(text="podinfo")

    app = web.Application()
    app.router.add_get("/", answer)
    server = TestServer(app)
    await server.start_server()
    state.url = f"http://127.0.0.1:{server.port}/"
    yield state
    await server.close()




@needs_hey
async def test_hey_load_reaches_the_target(make_client: Factory, podinfo: Target) -> None:
    client = await make_client()
    command = f"hey -n 20 -c 2 {podinfo.url}"
    resp = await client.post("/", json=hook({"type": "bash", "cmd": command, "returnCmdOutput": "true"}))
    assert resp.status == 200
    assert "[200]\t20 responses" in await resp.text()
    assert podinfo.hits == 20


@needs_hey
async def test_background_hey_generates_traffic_like_a_rollout_hook(make_client: Factory, podinfo: Target) -> None:
    client = await make_client()
    # The shape of Flagger's documented load-test hook, shortened to one second.
    command = f"hey -z 1s -q 10 -c 2 {podinfo.url}"
    resp = await client.post("/", json=hook({"cmd": command, "logCmdOutput": "true"}))
    assert resp.status == 202
    await client.app[RUNNER].wait_idle()
    assert podinfo.hits > 0
