"""Two ``flaggerpy run`` replicas with leader election on a real cluster: the leader is SIGKILLed mid-release and the
standby finishes it, with every step taken once, in order (invariant 4), all through deploy/rbac's Lease Role."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.release_harness import Subprocess, flaggerpy_argv
from tests.integration.conftest import wait_for
from tests.manifests import canary, deployment
from tests.ports import free_port
from tests.real.harness import CONTROLLER_NAMESPACE, RealCluster

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
# Short leases so the standby takes over in seconds (client-go's defaults would make it fifteen).
LEASE = ["--leader-election-lease-duration", "3", "--leader-election-renew-deadline", "2",
         "--leader-election-retry-period", "0.5"]


async def _replica(index: int, kubeconfig: Path, workdir: Path) -> tuple[Subprocess, int]:
    port = free_port()
    replica = Subprocess(f"replica-{index}", flaggerpy_argv(
        "run", "--kubeconfig", str(kubeconfig), "--enable-leader-election",
        "--leader-election-namespace", CONTROLLER_NAMESPACE, *LEASE,
        "--metrics-server", "http://127.0.0.1:9", "--threadiness", "2", "--port", str(port),
        "--listen-address", "127.0.0.1", "--log-level", "info"), workdir / f"replica-{index}.log")
    await replica.start()
    await replica.wait_http(f"http://127.0.0.1:{port}/healthz")
    return replica, port


def _holder(cluster: RealCluster) -> str:
    out = cluster.session.kubectl("get", "lease", "flaggerpy", "-n", CONTROLLER_NAMESPACE, "-o", "json",
                                  check=False)
    if out.returncode != 0:
        return ""
    return str(json.loads(out.stdout).get("spec", {}).get("holderIdentity") or "")


async def test_a_killed_leader_is_replaced_mid_release_and_no_step_repeats(
    cluster: RealCluster, tmp_path: Path
) -> None:
    kubeconfig = cluster.session.controller_kubeconfig
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "2s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
    }))
    replicas = [await _replica(i, kubeconfig, tmp_path) for i in range(2)]
    try:
        await wait_for(lambda: bool(_holder(cluster)), 30, lambda: "nobody took the Lease")
        await cluster.roll_out(NEW_IMAGE)
        weights: list[int] = []

        def observe() -> bool:
            status = cluster.status()
            weight = int(status.get("canaryWeight") or 0)
            if status.get("phase") == "Progressing" and (not weights or weights[-1] != weight):
                weights.append(weight)
            return status.get("phase") == "Succeeded"

        await wait_for(lambda: observe() or cluster.status().get("canaryWeight") == 20, 60,
                       lambda: f"status {cluster.status()}")
        holder = _holder(cluster)
        [(leader, _)] = [(r, p) for r, p in replicas
                         if r.process is not None and holder.endswith(f"_{r.process.pid}")]
        assert leader.process is not None
        leader.process.kill()
        await leader.process.wait()
        await wait_for(lambda: _holder(cluster) not in ("", holder), 30,
                       lambda: f"the standby did not take the Lease from {holder}")
        await wait_for(observe, 90, lambda: f"status {cluster.status()}, weights {weights}")
    finally:
        for replica, _ in replicas:
            await replica.stop()
    # Every step once and in order: none skipped across the takeover, none taken twice.
    steps = [w for w in weights if w]
    assert steps == [10, 20, 30, 40, 50], weights
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary is not None
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    # The replicas wrote real Events: one promotion, whichever replica made it (the Event may follow the status).
    def canary_events() -> list[dict[str, Any]]:
        return json.loads(cluster.session.kubectl(
            "get", "events", "-n", cluster.namespace, "--field-selector", "involvedObject.kind=Canary",
            "-o", "json").stdout)["items"]

    # Only this canary's: earlier scenarios of the session released a podinfo of the same name in this namespace,
    # and their Events stay behind.
    uid = cluster.canary()["metadata"]["uid"]

    def promoted() -> list[dict[str, Any]]:
        return [e for e in canary_events() if e.get("message") == "Promotion completed! Scaling down podinfo.test"
                and (e.get("involvedObject") or {}).get("uid") == uid]

    def seen() -> str:
        return f"no promotion Event among {[(e.get('reason'), e.get('message')) for e in canary_events()]}"

    await wait_for(lambda: bool(promoted()), 30, seen)
    [event] = promoted()
    assert event.get("count", 1) == 1, event
