"""What a person reads from ``get`` and ``status`` when piped: whole messages, aligned ``--watch`` rows printed
once per step, suspension and a waiting revision, the images of the revision, earlier attempts, and a metrics
backend that could not be reached."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from flaggerpy.analysis.base import MetricResult, StepContext
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.workload import spec_hash
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, ControllerFactory, ScriptedAnalyzer, wait_for
from tests.integration.test_ctl_commands import GROUP, PLURAL, Ctl, put_canary, put_event
from tests.manifests import NAMESPACE, canary, deployment
from tests.paths import REPO_ROOT

LONG = ("Halt advancement podinfo.test metric request-success-rate failed: Prometheus unreachable: cannot reach "
        "http://prometheus.monitoring:9090: ClientConnectorError (the canary keeps its weight until it answers)")


@pytest.fixture
def ctl(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> Ctl:
    return Ctl(sandbox, capsys)


async def test_piped_get_prints_whole_messages(cluster: Cluster, ctl: Ctl) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing", "canaryWeight": 20})
    await put_event(cluster, "podinfo", LONG, "2026-11-22T01:02:03Z")
    code, out, _ = await ctl("get", "canaries", "-n", NAMESPACE)
    assert code == 0
    assert out.splitlines()[1].endswith(LONG) and "..." not in out


async def test_piped_watch_rows_line_up_with_the_header_and_each_step_prints_once(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Initialized"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "get", "canaries", "-n", NAMESPACE, "--watch",
        "--kubeconfig", str(sandbox.kubeconfig_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.stdout is not None
    lines: list[str] = []

    async def read(n: int) -> None:
        while len(lines) < n:
            lines.append((await proc.stdout.readline()).decode().rstrip("\n"))  # type: ignore[union-attr]

    try:
        async with asyncio.timeout(30):
            await read(2)
            # One analysis step as the controller writes it: the status, then its Event.
            for weight in (10, 20):
                await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo",
                                                   {"phase": "Progressing", "canaryWeight": weight,
                                                    "lastTransitionTime": f"2026-11-22T01:0{weight // 10}:00Z"})
                await put_event(cluster, "podinfo", f"Advance podinfo.test canary weight {weight}",
                                f"2026-11-22T01:0{weight // 10}:00Z")
                await read(2 + weight // 10)
            await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"phase": "Succeeded"})
            await read(5)
    finally:
        proc.terminate()
        await proc.wait()
    header, *rows = lines
    assert [r.split()[:3] for r in rows] == [["podinfo", "Initialized", "0"], ["podinfo", "Progressing", "10"],
                                             ["podinfo", "Progressing", "20"], ["podinfo", "Succeeded", "20"]]
    assert rows[1].endswith("Advance podinfo.test canary weight 10")
    assert rows[2].endswith("Advance podinfo.test canary weight 20")
    for column in ("PHASE", "WEIGHT", "SUSPENDED", "FAILED", "PROGRESS", "LASTTRANSITION", "MESSAGE"):
        start = header.index(column)
        # Every row has a value starting in the header's column (and none spilling into it from the left); the
        # first row has no Event yet, so no message.
        shown = rows[1:] if column == "MESSAGE" else rows
        assert all(r[start] != " " and r[start - 1] == " " for r in shown), (column, lines)


async def put_release(cluster: Cluster, status: dict[str, Any], suspend: bool = False) -> None:
    """podinfo (6.0.1 under analysis), its primary on 6.0.0, and a Canary whose status says ``status``."""
    await cluster.create("apps", "deployments", deployment(image="ghcr.io/stefanprodan/podinfo:6.0.1"))
    await cluster.create("apps", "deployments", deployment("podinfo-primary"))
    template = cluster.get("apps", "deployments", "podinfo")["spec"]["template"]  # type: ignore[index]
    await put_canary(cluster, "podinfo", {"lastAppliedSpec": spec_hash(template), **status}, suspend=suspend)


async def test_a_suspended_canary_and_the_revision_waiting_behind_it(cluster: Cluster, ctl: Ctl) -> None:
    await put_release(cluster, {"phase": "Succeeded"}, suspend=True)
    code, out, _ = await ctl("get", "canaries", "-n", NAMESPACE)
    assert code == 0
    cells = out.splitlines()[1].split()
    assert cells[:4] == ["podinfo", "Succeeded", "0", "true"]
    assert out.splitlines()[1].endswith(f"suspended: flaggerpy resume podinfo -n {NAMESPACE} to continue")

    await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
    code, out, _ = await ctl("get", "canaries", "-n", NAMESPACE)
    assert out.splitlines()[1].endswith(
        f"suspended; a new revision is waiting: flaggerpy resume podinfo -n {NAMESPACE} starts its analysis")
    code, out, _ = await ctl("status", "podinfo", "-n", NAMESPACE)
    assert "Suspended:" in out and "a new revision is waiting" in out
    assert "revision podinfod=ghcr.io/stefanprodan/podinfo:6.0.2" in out


async def test_status_shows_images_earlier_attempts_and_an_unreachable_prometheus(cluster: Cluster, ctl: Ctl) -> None:
    unreachable = "Prometheus unreachable: cannot reach http://prometheus.monitoring:9090: ClientConnectorError"
    await put_release(cluster, {
        "phase": "Progressing", "canaryWeight": 10, "failedChecks": 1,
        "metricHistory": [
            {"iteration": 0, "weight": 10, "name": "request-success-rate", "value": 42.0, "passed": False,
             "time": "2026-11-22T01:01:00Z"},
            {"iteration": 0, "weight": 10, "name": "request-success-rate", "passed": False,
             "time": "2026-11-22T01:06:00Z", "error": unreachable},
        ],
    })
    for message, when in (("New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z"),
                          ("Canary failed! Scaling down podinfo.test", "2026-11-22T01:02:00Z"),
                          ("Manual retry of podinfo.test requested (request r1): re-running the analysis",
                           "2026-11-22T01:05:00Z"),
                          ("Advance podinfo.test canary weight 10", "2026-11-22T01:05:30Z")):
        await put_event(cluster, "podinfo", message, when)
    await cluster.cluster.patch(  # the failure is a Warning, as the controller writes it
        "", "events", NAMESPACE, "podinfo.2026-11-22t010200z", {"type": "Warning"})

    code, out, _ = await ctl("status", "podinfo", "-n", NAMESPACE)
    assert code == 0
    assert "Images:" in out
    assert "revision podinfod=ghcr.io/stefanprodan/podinfo:6.0.1" in out
    assert "primary podinfod=ghcr.io/stefanprodan/podinfo:6.0.0" in out
    assert "Attempt:" in out and "2 of this release" in out
    # The current attempt: its one step, with the cause of the failed query instead of "no data".
    steps = out.split("Analysis steps:\n")[1].split("\n\n")[0].splitlines()
    assert len(steps) == 2, steps
    assert f"request-success-rate=({unreachable}) FAIL" in steps[1]
    assert "no data" not in out
    current = out.split("Events of the current attempt:\n")[1].split("\n\n")[0]
    assert "Manual retry" in current and "Canary failed!" not in current
    earlier = out.split("Earlier attempts of this release (retried, aborted or restarted):\n")[1].splitlines()
    assert earlier[1].split()[:3] == ["1", "2026-11-22T01:00:00Z", "New"]
    assert earlier[1].endswith("Canary failed! Scaling down podinfo.test")
    assert " 1   " in earlier[1]  # it measured one step


async def test_status_follows_a_new_image(sandbox: Sandbox, cluster: Cluster, ctl: Ctl) -> None:
    await put_release(cluster, {"phase": "Succeeded"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "status", "podinfo", "-n", NAMESPACE, "--watch",
        "--kubeconfig", str(sandbox.kubeconfig_path),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.stdout is not None
    seen = bytearray()

    async def pump() -> None:
        while chunk := await proc.stdout.read(4096):  # type: ignore[union-attr]
            seen.extend(chunk)

    reader = asyncio.create_task(pump())
    try:
        await wait_for(lambda: b"podinfo:6.0.1" in seen, 30)
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.3")
        await wait_for(lambda: b"revision podinfod=ghcr.io/stefanprodan/podinfo:6.0.3" in seen, 30)
    finally:
        proc.terminate()
        await proc.wait()
        reader.cancel()


async def test_a_query_that_could_not_reach_prometheus_is_named_in_status(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer, ctl: Ctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cause = "Prometheus unreachable: cannot reach http://prometheus.monitoring:9090: ClientConnectorError"

    async def unreachable(canary: Canary, step: StepContext) -> list[MetricResult]:
        return [MetricResult("request-success-rate", None, False, min=99.0, error=cause)]

    monkeypatch.setattr(analyzer, "check_metrics", unreachable)
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 5, "maxWeight": 20, "stepWeight": 10}))
    async with run_controller():
        await cluster.roll_out("ghcr.io/stefanprodan/podinfo:6.0.1")
        await wait_for(lambda: any(s.get("error") for s in cluster.status().get("metricHistory") or []), 20)
    code, out, _ = await ctl("status", "podinfo", "-n", NAMESPACE)
    assert code == 0
    assert f"request-success-rate=({cause}) FAIL" in out and "no data" not in out
