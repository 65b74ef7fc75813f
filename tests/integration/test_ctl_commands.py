"""The people-facing CLI against the sandbox over HTTP: get (plain and --watch), status, pause/resume, and the
promote/abort/retry requests with their phase checks and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flaggerpy.apis.annotations import Action, handled, pending, record_handled
from flaggerpy.cli import main as cli_main
from flaggerpy.ctl.common import CtlError
from flaggerpy.ctl.get import watch
from flaggerpy.ctl.status import follow
from flaggerpy.kube.api import KubeClient
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, wait_for
from tests.manifests import NAMESPACE, canary

GROUP, PLURAL = "flagger.app", "canaries"


class Ctl:
    """Runs ``flaggerpy ...`` in a thread (it owns its event loop) while the sandbox serves on the test's loop."""

    def __init__(self, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
        self.kubeconfig = str(sandbox.kubeconfig_path)
        self.capsys = capsys

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(cli_main, [*args, "--kubeconfig", self.kubeconfig])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def ctl(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> Ctl:
    return Ctl(sandbox, capsys)


async def put_canary(cluster: Cluster, name: str, status: dict[str, Any], namespace: str = NAMESPACE,
                     **spec: Any) -> None:
    await cluster.create(GROUP, PLURAL, canary(name, namespace=namespace, **spec))
    await cluster.cluster.patch_status(GROUP, PLURAL, namespace, name, status)


async def put_event(cluster: Cluster, name: str, message: str, when: str, count: int = 1) -> None:
    await cluster.create("", "events", {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{when.replace(':', '')}".lower(), "namespace": NAMESPACE},
        "involvedObject": {"kind": "Canary", "name": name, "namespace": NAMESPACE, "apiVersion": "flagger.app/v1beta1"},
        "type": "Normal", "reason": "Synced", "message": message, "count": count,
        "firstTimestamp": when, "lastTimestamp": when,
    })


async def test_get_canaries_plain_table(cluster: Cluster, ctl: Ctl) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing", "canaryWeight": 20, "failedChecks": 1,
                                          "lastTransitionTime": "2026-11-22T01:02:03Z"})
    await put_canary(cluster, "other", {"phase": "Succeeded"})
    await put_event(cluster, "podinfo", "New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z")
    await put_event(cluster, "podinfo", "Advance podinfo.test canary weight 20", "2026-11-22T01:02:03Z")

    code, out, _ = await ctl("get", "canaries", "-n", NAMESPACE)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "WEIGHT", "SUSPENDED", "FAILED", "PROGRESS", "LASTTRANSITION",
                                "MESSAGE"]
    assert lines[1].split()[:5] == ["other", "Succeeded", "0", "false", "0/2"]
    assert lines[2].split()[:5] == ["podinfo", "Progressing", "20", "false", "1/2"]
    assert "[####------] 2/5" in lines[2]
    assert lines[2].endswith("2026-11-22T01:02:03Z   Advance podinfo.test canary weight 20")

    code, out, _ = await ctl("get", "canaries", "-A")
    assert code == 0 and out.splitlines()[0].startswith("NAMESPACE")
    assert out.splitlines()[1].split()[:2] == [NAMESPACE, "other"]

    code, out, err = await ctl("get", "canaries", "-n", "gateway")
    assert (code, out) == (0, "") and "No canaries found in namespace gateway" in err


async def test_get_watch_prints_changed_rows_from_the_watch(sandbox: Sandbox, cluster: Cluster) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Initialized"})
    out = io.StringIO()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(watch(kube, NAMESPACE, out, tty=False))
        await wait_for(lambda: "Initialized" in out.getvalue(), 10)
        await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo",
                                           {"phase": "Progressing", "canaryWeight": 10})
        await wait_for(lambda: "Progressing" in out.getvalue(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("NAME")
    assert lines[1].split()[:3] == ["podinfo", "Initialized", "0"]
    assert lines[2].split()[:3] == ["podinfo", "Progressing", "10"]
    # Reads came from one list and a watch, not from polling.
    assert sandbox.counters.get("list", "canaries") == 1
    assert sandbox.counters.get("watch", "canaries") >= 1


async def test_get_watch_from_an_empty_namespace_prints_the_header_with_the_first_canary(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    out = io.StringIO()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(watch(kube, NAMESPACE, out, tty=False))
        await wait_for(lambda: sandbox.counters.get("watch", "canaries") >= 1, 10)
        await put_canary(cluster, "podinfo", {"phase": "Initializing"})
        await wait_for(lambda: "Initializing" in out.getvalue(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("NAME") and lines[1].startswith("podinfo")


async def test_get_watch_live_view_redraws_on_changes(sandbox: Sandbox, cluster: Cluster) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Initialized"})
    out = io.StringIO()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(watch(kube, NAMESPACE, out, tty=True))
        await wait_for(lambda: "Initialized" in out.getvalue(), 10)
        await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"phase": "Failed"})
        await wait_for(lambda: "Failed" in out.getvalue(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "SINCE" in out.getvalue() and "MESSAGE" in out.getvalue()


async def test_status_shows_the_release_timeline(cluster: Cluster, ctl: Ctl) -> None:
    await put_canary(cluster, "podinfo", {
        "phase": "Progressing", "canaryWeight": 20, "failedChecks": 0,
        "lastAppliedSpec": "new", "lastPromotedSpec": "old",
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                        "message": "New revision detected, progressing canary analysis.",
                        "lastTransitionTime": "2026-11-22T01:00:00Z", "lastUpdateTime": "2026-11-22T01:00:00Z"}],
        "metricHistory": [
            {"iteration": 0, "weight": 10, "name": "request-success-rate", "value": 99.5, "passed": True,
             "time": "2026-11-22T01:01:00Z"},
            {"iteration": 0, "weight": 20, "name": "request-success-rate", "value": 99.9, "passed": True,
             "time": "2026-11-22T01:02:00Z"},
        ],
    })
    await put_event(cluster, "podinfo", "New revision detected! Scaling up podinfo.test", "2026-11-22T01:00:00Z")
    await put_event(cluster, "podinfo", "Advance podinfo.test canary weight 10", "2026-11-22T01:00:30Z")
    await put_event(cluster, "podinfo", "Advance podinfo.test canary weight 20", "2026-11-22T01:01:30Z", count=2)

    code, out, _ = await ctl("status", "podinfo", "-n", NAMESPACE)
    assert code == 0
    assert "Canary:" in out and f"{NAMESPACE}/podinfo" in out
    assert "[########------------] 2/5 weights" in out
    steps = out.split("Analysis steps:\n")[1].split("\n\nEvents:")[0].splitlines()
    assert steps[0].split() == ["STEP", "WEIGHT", "TIME", "METRICS"]
    assert steps[1].split() == ["1", "10%", "2026-11-22T01:01:00Z", "request-success-rate=99.5", "ok"]
    assert steps[2].split()[:2] == ["2", "20%"]
    events = out.split("Events:")[1]
    assert events.index("weight 10") < events.index("weight 20")
    assert "Promoted   Unknown   Progressing" in out

    code, _, err = await ctl("status", "nope", "-n", NAMESPACE)
    assert code == 1 and err == f'error: canary "nope" not found in namespace "{NAMESPACE}" (canaries there: podinfo)\n'


async def test_status_watch_reprints_on_change_and_ends_when_the_canary_is_deleted(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Initialized"})
    out = io.StringIO()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(follow(kube, NAMESPACE, "podinfo", out, tty=False))
        await wait_for(lambda: "Initialized" in out.getvalue(), 10)
        await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo",
                                           {"phase": "Progressing", "canaryWeight": 10})
        await put_event(cluster, "podinfo", "Advance podinfo.test canary weight 10", "2026-11-22T01:00:30Z")
        await wait_for(lambda: "Advance podinfo.test canary weight 10" in out.getvalue(), 10)
        await sandbox.cluster.delete(GROUP, PLURAL, NAMESPACE, "podinfo")
        assert await asyncio.wait_for(task, 10) == 0
    text = out.getvalue()
    assert text.count("Canary:") >= 2 and "Progressing" in text
    assert text.endswith("canary.flagger.app/podinfo deleted\n")

    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        with pytest.raises(CtlError, match='canary "nope" not found'):
            await follow(kube, NAMESPACE, "nope", io.StringIO(), tty=False)


async def test_status_watch_live_view(sandbox: Sandbox, cluster: Cluster) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Initialized"})
    out = io.StringIO()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(follow(kube, NAMESPACE, "podinfo", out, tty=True))
        await wait_for(lambda: "Initialized" in out.getvalue(), 10)
        await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"phase": "Failed"})
        await wait_for(lambda: "Failed" in out.getvalue(), 10)
        await sandbox.cluster.delete(GROUP, PLURAL, NAMESPACE, "podinfo")
        assert await asyncio.wait_for(task, 10) == 0
    assert "Analysis steps" in out.getvalue()


async def test_pause_and_resume_toggle_spec_suspend(cluster: Cluster, ctl: Ctl) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing"})
    code, out, _ = await ctl("pause", "podinfo", "-n", NAMESPACE)
    assert (code, out) == (0, "canary.flagger.app/podinfo paused\n")
    assert cluster.canary()["spec"]["suspend"] is True
    code, out, _ = await ctl("pause", "podinfo", "-n", NAMESPACE)
    assert (code, out) == (0, "canary.flagger.app/podinfo already paused\n")

    code, _, err = await ctl("promote", "podinfo", "-n", NAMESPACE)
    assert code == 1 and "is paused (spec.suspend)" in err

    code, out, _ = await ctl("resume", "podinfo", "-n", NAMESPACE)
    assert (code, out) == (0, "canary.flagger.app/podinfo resumed\n")
    assert "suspend" not in cluster.canary()["spec"]
    code, out, _ = await ctl("resume", "podinfo", "-n", NAMESPACE)
    assert out == "canary.flagger.app/podinfo already resumed\n"

    code, _, err = await ctl("pause", "nope", "-n", NAMESPACE)
    assert code == 1 and 'canary "nope" not found' in err


@pytest.mark.parametrize(("action", "good_phase", "bad_phase", "where"), [
    (Action.PROMOTE, "WaitingPromotion", "Initialized", "Progressing, WaitingPromotion"),
    (Action.ABORT, "Progressing", "Succeeded", "Waiting, Progressing, WaitingPromotion"),
    (Action.RETRY, "Failed", "Progressing", "Failed"),
])
async def test_manual_requests_write_an_annotation_only_when_they_apply(
    cluster: Cluster, ctl: Ctl, action: Action, good_phase: str, bad_phase: str, where: str
) -> None:
    await put_canary(cluster, "podinfo", {"phase": bad_phase})
    code, out, err = await ctl(action.value, "podinfo", "-n", NAMESPACE)
    assert (code, out) == (1, "")
    assert err == (f'error: canary "podinfo" in namespace "{NAMESPACE}" is {bad_phase}: '
                   f"{action.value} applies only in phase {where}\n")
    assert pending(cluster.canary()) == {}

    await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"phase": good_phase})
    code, out, _ = await ctl(action.value, "podinfo", "-n", NAMESPACE)
    assert code == 0
    first = pending(cluster.canary())[action]
    assert out == f"canary.flagger.app/podinfo {action.value} requested, request id {first}\n"

    # A second request before the controller handled the first replaces it (one pending request per action).
    code, out, _ = await ctl(action.value, "podinfo", "-n", NAMESPACE)
    second = pending(cluster.canary())[action]
    assert second != first and f"(replaces pending request {first})" in out

    # Once the controller records the id as handled, nothing is pending any more.
    status = cluster.status()
    record_handled(status, action, second, "Handled", datetime.now(UTC))
    await cluster.cluster.patch_status(GROUP, PLURAL, NAMESPACE, "podinfo", {"conditions": status["conditions"]})
    assert pending(cluster.canary()) == {} and handled(cluster.status()) == {action: second}


def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose only cluster is a port on this machine where nothing listens."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return kubeconfig


async def test_unreachable_cluster_is_a_clear_error(ctl: Ctl, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path)
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, ["get", "canaries", "--kubeconfig", str(kubeconfig)])
    assert code == 1
    assert capsys.readouterr().err.startswith("error: cannot reach the API server")
    code = await asyncio.to_thread(cli_main, ["promote", "x", "--kubeconfig", str(tmp_path / "absent")])
    assert code == 1 and "does not exist" in capsys.readouterr().err
