"""``flaggerpy run`` as a process against the sandbox: it initialises a canary, serves telemetry, stops on SIGTERM;
bad flags and variables are named."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from flaggerpy.canary import runner
from tests.integration.conftest import Cluster, ControllerFactory, wait_for
from tests.manifests import canary, deployment
from tests.paths import REPO_ROOT
from tests.ports import free_port


def _event_messages(cluster: Cluster) -> list[str]:
    return [str(e.get("message")) for e in cluster.sb.cluster.list("", "events", "test")]


async def _metrics_when(port: int, line: str, within: float = 10.0) -> str:
    """The /metrics exposition once it contains ``line``; fails with the last exposition seen."""
    body = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                body = await resp.text()
            if line in body:
                return body
            if loop.time() > deadline:
                raise AssertionError(f"{line!r} not exported within {within}s; /metrics:\n{body}")
            await asyncio.sleep(0.05)


async def test_run_command_initialises_and_stops_gracefully(cluster: Cluster) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "run", "--kubeconfig", str(cluster.sb.kubeconfig_path),
        # The port comes from the environment and the log level in Flagger's one-dash spelling, as a Helm chart
        # would pass them.
        "--listen-address", "127.0.0.1", "-log-level=warning", "-enable-config-tracking=false",
        env={**os.environ, "FLAGGERPY_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
    )
    try:
        await cluster.wait_phase("Initialized", within=30)
        # The sandbox shows the status as soon as it is written; the process publishes it once it has read the
        # answer, and records the step's Event after that: both are waited for, not expected at once.
        body = await _metrics_when(port, 'flagger_canary_status{name="podinfo",namespace="test"} 1.0')
        assert 'flagger_canary_weight{namespace="test",workload="podinfo-primary"} 100.0' in body
        await wait_for(lambda: "Initialization done! podinfo.test" in _event_messages(cluster), 10,
                       lambda: f"events: {_event_messages(cluster)}")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()[-2000:]


def test_bad_flags_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    runner.configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mesh-provider", "istio"])
    err = capsys.readouterr().err
    assert "argument --mesh-provider: 'istio' is not one of gatewayapi, gatewayapi:v1, gatewayapi:v1beta1" in err


def test_bad_environment_is_named(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    runner.configure(parser)
    monkeypatch.setenv("FLAGGERPY_THREADINESS", "0")
    monkeypatch.setenv("FLAGGERPY_ENABLE_CONFIG_TRACKING", "maybe")
    assert runner.run(parser.parse_args([])) == 2
    err = capsys.readouterr().err
    assert "$FLAGGERPY_THREADINESS: must be >= 1, not 0" in err
    assert "$FLAGGERPY_ENABLE_CONFIG_TRACKING: 'maybe' is not a boolean (true or false)" in err


async def test_selector_labels_and_label_prefixes_shape_the_primary(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    target = deployment()
    identity = {"app.kubernetes.io/name": "podinfo"}
    target["metadata"]["labels"] = {**identity, "app": "shop", "team": "a", "cost-center": "42"}
    target["spec"]["selector"]["matchLabels"] = dict(identity)
    target["spec"]["template"]["metadata"]["labels"] = {**identity, "app": "shop"}
    await cluster.create("apps", "deployments", target)
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller(selector_labels=("app.kubernetes.io/name", "app"), include_label_prefixes=("team",)):
        await cluster.wait_phase("Initialized")
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary is not None
    assert primary["metadata"]["labels"] == {"app.kubernetes.io/name": "podinfo-primary", "team": "a"}
    assert primary["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "podinfo-primary"}}
    assert cluster.get("", "services", "podinfo-canary")["spec"]["selector"] == identity
