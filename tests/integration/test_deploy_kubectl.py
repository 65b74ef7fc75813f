"""deploy/ with the real kubectl against the sandbox: ``kubectl apply -k deploy/`` installs CRDs, RBAC and the
controller; the examples apply on top of it; the controller Deployment is hardened as documented."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import flaggerpy
from flaggerpy.canary.runflags import resolve
from flaggerpy.canary.runner import FLAGS as RUN_FLAGS
from flaggerpy.sandbox import Sandbox
from tests.integration.kubectl import kubectl
from tests.paths import GATEWAY_API_CRDS, REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

DEPLOY = REPO_ROOT / "deploy"
GATEWAY_CRDS = GATEWAY_API_CRDS
SYSTEM = "flaggerpy-system"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.05) as sandbox:
        yield sandbox


async def built() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(await kubectl(None, "kustomize", str(DEPLOY))) if d]


async def test_kustomize_builds_everything_into_flaggerpy_system() -> None:
    docs = await built()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment",
                     "Namespace", "PodDisruptionBudget", "Role", "RoleBinding", "ServiceAccount"]
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition") == [
        "alertproviders.flagger.app", "canaries.flagger.app", "metrictemplates.flagger.app"]
    for doc in docs:
        if doc["kind"] in ("ConfigMap", "Deployment", "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget"):
            assert doc["metadata"]["namespace"] == SYSTEM
    for doc in docs:
        for subject in doc.get("subjects") or []:
            assert (subject["kind"], subject["name"], subject["namespace"]) == ("ServiceAccount", "flaggerpy", SYSTEM)


async def test_controller_deployment_is_hardened() -> None:
    dep = next(d for d in await built() if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "flaggerpy"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["image"].startswith("ghcr.io/flaggerpy/flaggerpy:")
    assert container["args"][:3] == ["run", "--enable-leader-election", f"--leader-election-namespace={SYSTEM}"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 8080
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["resources"]["limits"]["memory"] == "768Mi"
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


async def test_two_replicas_survive_a_drain_a_node_and_a_zone() -> None:
    docs = await built()
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec = dep["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c["whenUnsatisfiable"] for c in spec["topologySpreadConstraints"]}
    assert spread == {"kubernetes.io/hostname": "DoNotSchedule", "topology.kubernetes.io/zone": "ScheduleAnyway"}
    # The grace period covers the steps in flight and the Lease release (a webhook's default 10 s, a query's 5 s).
    assert spec["terminationGracePeriodSeconds"] >= 30


async def test_the_example_network_policy_limits_the_controllers_egress(sb: Sandbox) -> None:
    (policy,) = [d for d in yaml.safe_load_all((DEPLOY / "examples" / "networkpolicy.yaml").read_text()) if d]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "flaggerpy"}
    ports = sorted({p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])})
    assert ports == [53, 443, 6443, 9090]
    await kubectl(sb, "create", "namespace", SYSTEM)
    out = await kubectl(sb, "apply", "-n", SYSTEM, "-f", str(DEPLOY / "examples" / "networkpolicy.yaml"))
    assert "networkpolicy.networking.k8s.io/flaggerpy created" in out


async def test_controller_flags_exist_in_flaggerpy_run() -> None:
    # The Deployment's arguments must parse with the real `flaggerpy run` flags (no typo reaches a cluster).
    runner = pytest.importorskip("flaggerpy.canary.runner", reason="the controller entry point is not built yet")
    dep = next(d for d in await built() if d["kind"] == "Deployment")
    parser = argparse.ArgumentParser(exit_on_error=False)
    runner.configure(parser)
    args = parser.parse_args(dep["spec"]["template"]["spec"]["containers"][0]["args"][1:])
    assert args.enable_leader_election and args.leader_election_namespace == SYSTEM and args.port == 8080


async def test_apply_k_deploy_then_examples(sb: Sandbox) -> None:
    out = await kubectl(sb, "apply", "-k", str(DEPLOY))
    assert "deployment.apps/flaggerpy created" in out
    assert "clusterrole.rbac.authorization.k8s.io/flaggerpy created" in out
    dep = sb.cluster.get("apps", "deployments", SYSTEM, "flaggerpy")
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert sb.cluster.get("rbac.authorization.k8s.io", "roles", SYSTEM, "flaggerpy-leader-election") is not None
    # Applying again changes nothing. kubectl re-sends a PodDisruptionBudget's selector every time (its patch
    # strategy is "replace"), so that line says "configured"; the object itself stays the same version.
    pdb_version = sb.cluster.get("policy", "poddisruptionbudgets", SYSTEM, "flaggerpy")["metadata"]["resourceVersion"]
    again = [line for line in (await kubectl(sb, "apply", "-k", str(DEPLOY))).splitlines()
             if not line.startswith("poddisruptionbudget.policy/")]
    assert not [line for line in again if "created" in line or "configured" in line], again
    pdb = sb.cluster.get("policy", "poddisruptionbudgets", SYSTEM, "flaggerpy")
    assert pdb["metadata"]["resourceVersion"] == pdb_version

    await kubectl(sb, "apply", "-f", str(GATEWAY_CRDS))
    for example in ("podinfo-gatewayapi-canary.yaml", "podinfo-ab-testing.yaml", "podinfo-blue-green.yaml"):
        await kubectl(sb, "apply", "-f", str(DEPLOY / "examples" / example))
    names = (await kubectl(sb, "get", "canaries", "-n", "test", "-o", "name")).split()
    assert sorted(names) == ["canary.flagger.app/abtest", "canary.flagger.app/bluegreen", "canary.flagger.app/podinfo"]
    templates = await kubectl(sb, "get", "metrictemplates", "-n", "test", "-o", "name")
    assert sorted(templates.split()) == ["metrictemplate.flagger.app/error-rate", "metrictemplate.flagger.app/latency"]


async def test_the_prometheus_address_is_a_documented_kustomize_patch(tmp_path: Path) -> None:
    def settings(docs: list[dict[str, Any]]) -> dict[str, str]:
        dep = next(d for d in docs if d["kind"] == "Deployment")
        (source,) = dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        config = next(d for d in docs if d["kind"] == "ConfigMap"
                      and d["metadata"]["name"] == source["configMapRef"]["name"])
        return dict(config["data"])

    assert settings(await built()) == {"FLAGGERPY_METRICS_SERVER": "http://prometheus.monitoring:9090"}
    # The overlay the README shows, with this checkout as its base.
    readme = (REPO_ROOT / "README.md").read_text()
    overlay = readme.split("# my-flaggerpy/kustomization.yaml\n", 1)[1].split("```", 1)[0]
    # Laid out as the README has it: the overlay directory beside the checkout (kustomize takes no absolute bases).
    (tmp_path / "flaggerpy").symlink_to(REPO_ROOT)
    (tmp_path / "my-flaggerpy").mkdir()
    (tmp_path / "my-flaggerpy" / "kustomization.yaml").write_text(overlay)
    docs = [d for d in yaml.safe_load_all(await kubectl(None, "kustomize", str(tmp_path / "my-flaggerpy"))) if d]
    assert settings(docs) == {"FLAGGERPY_METRICS_SERVER": "http://prometheus-operated.monitoring:9090"}
    image = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example.com/flaggerpy:{flaggerpy.__version__}"
    # The controller reads it as its --metrics-server.
    args, problems = resolve(argparse.Namespace(), RUN_FLAGS, settings(docs))
    assert problems == [] and args.metrics_server == "http://prometheus-operated.monitoring:9090"
