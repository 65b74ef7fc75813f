"""The CLI driving a running controller: ``flaggerpy promote`` opens a closed confirm-promotion gate, ``abort`` rolls
back a running analysis, ``retry`` re-runs a failed one, and ``status`` reports each handled request."""

from __future__ import annotations

import pytest

from flaggerpy.analysis.base import HookType
from flaggerpy.kube import resources as res
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, ScriptedAnalyzer, wait_for
from tests.integration.test_ctl_commands import Ctl
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
NS = ("-n", "test")


@pytest.fixture
def ctl(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> Ctl:
    return Ctl(sandbox, capsys)


async def test_promote_abort_retry_through_the_cli(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer, events: RecordingEvents,
    ctl: Ctl,
) -> None:
    analyzer.gates[HookType.CONFIRM_PROMOTION] = False
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 2, "maxWeight": 20, "stepWeight": 10,
    }))
    async with run_controller() as controller:
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("WaitingPromotion", within=20)
        code, _, _ = await ctl("promote", "podinfo", *NS)
        assert code == 0
        await cluster.wait_phase("Succeeded", within=20)
        primary = cluster.get("apps", "deployments", "podinfo-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE

        # A long interval keeps the next analysis running while we abort it.
        obj = cluster.canary()
        obj["spec"]["analysis"]["interval"] = "1h"
        await cluster.update("flagger.app", "canaries", obj)
        # The Canary and the Deployment come in on separate watches: the new revision must meet the long interval.
        await wait_for(lambda: (controller.caches.get(res.CANARIES, "test", "podinfo") or {}).get("spec", {}).get(
            "analysis", {}).get("interval") == "1h", 10, lambda: "the controller never saw the 1h interval")
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
        await wait_for(lambda: cluster.status().get("canaryWeight") == 10, 15)
        code, _, _ = await ctl("abort", "podinfo", *NS)
        assert code == 0
        await cluster.wait_phase("Failed")
        assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]

        code, _, err = await ctl("abort", "podinfo", *NS)
        assert code == 1 and "is Failed: abort applies only in phase" in err
        code, _, _ = await ctl("retry", "podinfo", *NS)
        assert code == 0
        await wait_for(lambda: cluster.status().get("phase") == "Progressing"
                       and cluster.status().get("canaryWeight") == 10, 15)

    code, out, _ = await ctl("status", "podinfo", *NS)
    assert code == 0
    handled = next(line for line in out.splitlines() if line.startswith("Manual requests handled:"))
    assert "promote " in handled and "abort " in handled and "retry " in handled
    messages = events.messages("test/podinfo")
    assert any(m.startswith("Rolling back podinfo.test manual abort requested") for m in messages)
