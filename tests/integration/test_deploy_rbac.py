"""RBAC coverage: every API request the controller makes during real releases is allowed by deploy/rbac.

The controller runs against the sandbox with leader election and real Events through a promotion and a rollback:
once in-process (with a tracked ConfigMap and a deletion with revertOnDeletion), once as the ``flaggerpy run``
process with exactly the arguments of deploy/controller and the real analyzer. The sandbox counts every request
it serves by verb and ``plural.group[/subresource]``; each one must match a rule of the ClusterRole (or, for Leases
in the controller's namespace, the Role). A request the role does not cover would be a 403 in a real cluster.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from flaggerpy.canary.controller import Controller, ControllerSettings
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.events import EventRecorder
from flaggerpy.kube.leader import LeaderElector
from flaggerpy.kube.settings import LeaderSettings, WatchSettings
from flaggerpy.routing.features import HTTPROUTE_CRD
from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.apiserver.faults import Rule as FaultRule
from tests.integration.conftest import Cluster, RecordingNotifier, ScriptedAnalyzer, wait_for
from tests.manifests import canary, deployment
from tests.ports import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RBAC = DEPLOY / "rbac"
SYSTEM = "flaggerpy-system"
LEASE = "flaggerpy"
Rule = Mapping[str, Any]


def load_rules(secret_copies: bool = False) -> tuple[list[Rule], list[Rule]]:
    """The ClusterRole's and the leader-election Role's rules, as written in deploy/rbac (plus, when asked, the
    optional rbac/secret-copies ClusterRole)."""
    docs = [d for path in sorted(RBAC.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    role = next(d for d in docs if d["kind"] == "Role")
    rules = list(cluster_role["rules"])
    if secret_copies:
        extra = yaml.safe_load_all((RBAC / "secret-copies" / "rbac.yaml").read_text())
        rules += next(d for d in extra if d["kind"] == "ClusterRole")["rules"]
    return rules, role["rules"]


def split(counter_name: str) -> tuple[str, str]:
    """``plural.group/sub`` → (group, ``plural/sub``); core resources have no group."""
    name, _, sub = counter_name.partition("/")
    plural, _, group = name.partition(".")
    return group, f"{plural}/{sub}" if sub else plural


def allowed(rules: list[Rule], verb: str, group: str, resource: str) -> bool:
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []) \
                and verb in rule.get("verbs", []):
            return True
    return False


def restricted_names(rules: list[Rule], verb: str, group: str, resource: str) -> set[str] | None:
    """The resourceNames a matching rule limits ``verb`` to (None when some rule allows every name)."""
    names: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []) \
                and verb in rule.get("verbs", []):
            if not rule.get("resourceNames"):
                return None
            names |= set(rule["resourceNames"])
    return names


def test_rules_have_no_wildcards_and_secrets_are_read_only() -> None:
    cluster_rules, role_rules = load_rules()
    for rule in cluster_rules + role_rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    secret_verbs = {v for r in cluster_rules if "secrets" in r["resources"] for v in r["verbs"]}
    assert secret_verbs == {"get", "list", "watch"}
    assert all("coordination.k8s.io" not in r["apiGroups"] for r in cluster_rules), "Leases belong in the Role"


@pytest.mark.parametrize("tracked", ["configmaps", "secrets"])
async def test_every_request_of_a_release_and_a_rollback_is_allowed(
    sandbox: Sandbox, cluster: Cluster, tracked: str
) -> None:
    await cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM}})
    kind, ref = ("ConfigMap", "configMapRef") if tracked == "configmaps" else ("Secret", "secretRef")
    await cluster.create("", tracked, {"apiVersion": "v1", "kind": kind,
                                       "metadata": {"name": "podinfo-config", "namespace": "test"},
                                       "data": {"level": "aW5mbw=="}})
    target = deployment()
    target["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{ref: {"name": "podinfo-config"}}]
    await cluster.create("apps", "deployments", target)
    await cluster.create("flagger.app", "canaries", canary(revertOnDeletion=True))
    sandbox.counters.reset()

    analyzer = ScriptedAnalyzer()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        recorder = EventRecorder(kube)

        async def events(obj: Mapping[str, Any], type_: str, reason: str, message: str, canary: Any = None) -> None:
            await recorder.record(dict(obj), "Warning" if type_ == "Warning" else "Normal", reason, message)

        settings = ControllerSettings(
            threadiness=2, sync_timeout=10.0, engine=EngineSettings(poll_interval=0.2),
            watch=WatchSettings(backoff_initial=0.05, backoff_max=0.5, backoff_jitter=0.05),
        )
        controller = Controller(kube, analyzer, RecordingNotifier(), events, settings)
        leading = asyncio.Event()

        async def started() -> None:
            controller.start_workers()
            leading.set()

        elector = LeaderElector(kube, LEASE, SYSTEM, on_started_leading=started,
                                settings=LeaderSettings(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2))
        await controller.start_informers()
        elector.start()
        try:
            await asyncio.wait_for(leading.wait(), 10)
            # Some status writes meet a 409: the recovery path reads the live Canary (get) and writes again.
            sandbox.faults.seed = 11
            sandbox.faults.conflicts = [FaultRule(verb="update", resource="canaries/status", rate=0.3)]
            await cluster.roll_out("ghcr.io/stefanprodan/podinfo:6.0.1")
            await cluster.wait_phase("Succeeded", within=30)
            sandbox.faults.conflicts = []
            analyzer.metrics_pass = False
            await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
            await cluster.wait_phase("Failed", within=30)
            await sandbox.cluster.delete("flagger.app", "canaries", "test", "podinfo")
            await wait_for(lambda: cluster.get("flagger.app", "canaries", "podinfo") is None, 15)
        finally:
            await controller.stop()
            await elector.stop()

    if tracked == "configmaps":
        made = assert_all_allowed(sandbox)
    else:
        # Copying a tracked Secret is exactly what the optional secret-copies role is for, and needs it.
        with pytest.raises(AssertionError, match=r"create secrets"):
            assert_all_allowed(sandbox)
        made = assert_all_allowed(sandbox, secret_copies=True)
    assert ("create", tracked) in made, f"the tracked {kind} was copied to -primary"
    assert ("get", "canaries.flagger.app") in made, "the conflict-recovery path ran"


def assert_all_allowed(sandbox: Sandbox, secret_copies: bool = False) -> list[tuple[str, str]]:
    """Every (verb, resource) the sandbox served matches deploy/rbac; returns them."""
    cluster_rules, role_rules = load_rules(secret_copies)
    served = sandbox.counters.snapshot()
    made = sorted((verb, name) for name, verbs in served.items() for verb in verbs)
    assert ("create", "events") in made and ("update", "canaries.flagger.app/status") in made
    assert any(name == "leases.coordination.k8s.io" for _, name in made)
    denied = []
    for verb, name in made:
        group, resource = split(name)
        rules = role_rules if group == "coordination.k8s.io" else cluster_rules
        if not allowed(rules, verb, group, resource):
            denied.append(f"{verb} {name}")
    assert denied == [], f"requests the RBAC in deploy/rbac does not allow: {denied}"
    # Rules limited to names: the controller uses exactly those names.
    for verb in ("update", "watch"):
        assert restricted_names(role_rules, verb, "coordination.k8s.io", "leases") == {LEASE}
    crd_names = restricted_names(cluster_rules, "get", "apiextensions.k8s.io", "customresourcedefinitions")
    assert crd_names is not None and HTTPROUTE_CRD in crd_names
    return made


def deployed_args(port: int) -> list[str]:
    """The controller's arguments exactly as deploy/controller sets them, listening on a local test port."""
    deployment = yaml.safe_load((DEPLOY / "controller" / "deployment.yaml").read_text())
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return [a for a in args if not a.startswith("--port=")] + [f"--port={port}", "--listen-address=127.0.0.1"]


async def test_the_deployed_controller_process_stays_within_its_rbac(sandbox: Sandbox, cluster: Cluster) -> None:
    await cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM}})
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 25}))
    sandbox.counters.reset()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", *deployed_args(free_port()),
        "--kubeconfig", str(sandbox.kubeconfig_path), "--log-level=warning",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=DEPLOY.parent,
    )
    try:
        await cluster.wait_phase("Initialized", within=30)
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.1")
        await cluster.wait_phase("Succeeded", within=30)
        # A rollout webhook nobody answers fails the next analysis: a rollback with the real analyzer.
        obj = cluster.canary()
        obj["spec"]["analysis"]["webhooks"] = [{"name": "gate", "url": f"http://127.0.0.1:{free_port()}/",
                                                "timeout": "1s"}]
        await cluster.update("flagger.app", "canaries", obj)
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
        await cluster.wait_phase("Failed", within=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert_all_allowed(sandbox)

