"""KEDA in the sandbox: installed on demand, ScaledObjects keep their target within bounds and hold it while paused,
and ``kubectl`` sees them; a sandbox without it is a cluster without KEDA."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import wait_for
from tests.integration.kubectl import kubectl
from tests.manifests import deployment

KEDA = ("keda.sh", "scaledobjects")
PAUSED = "autoscaling.keda.sh/paused-replicas"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.05, keda=True) as sandbox:
        yield sandbox


def replicas(sb: Sandbox) -> int:
    dep = sb.cluster.get("apps", "deployments", "default", "web")
    assert dep is not None
    return int(dep["spec"]["replicas"])


def scaled_object_status(sb: Sandbox) -> dict[str, Any]:
    obj = sb.cluster.get(*KEDA, "default", "web")
    assert obj is not None
    return obj.get("status") or {}


def condition(sb: Sandbox, type_: str) -> str | None:
    return next((c["status"] for c in scaled_object_status(sb).get("conditions") or [] if c["type"] == type_), None)


async def annotate(sb: Sandbox, value: str | None) -> None:
    await sb.cluster.patch(*KEDA, "default", "web", {"metadata": {"annotations": {PAUSED: value}}})


async def test_keda_scaled_object_bounds_and_pauses_its_target(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment("web", namespace="default", replicas=1))
    await sb.cluster.create(*KEDA, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 2, "maxReplicaCount": 3,
                 "triggers": [{"type": "cpu", "metadata": {"value": "50"}}]},
    })
    await wait_for(lambda: replicas(sb) == 2 and condition(sb, "Ready") == "True",
                   describe=lambda: f"replicas {replicas(sb)}, status {scaled_object_status(sb)}")
    assert scaled_object_status(sb)["scaleTargetKind"] == "apps/v1.Deployment"

    await annotate(sb, "0")
    await wait_for(lambda: replicas(sb) == 0 and scaled_object_status(sb).get("pausedReplicaCount") == 0,
                   describe=lambda: f"replicas {replicas(sb)}, status {scaled_object_status(sb)}")
    assert condition(sb, "Paused") == "True"
    # Held while paused: a scale-up by someone else is undone.
    await sb.cluster.patch("apps", "deployments", "default", "web", {"spec": {"replicas": 5}})
    await wait_for(lambda: replicas(sb) == 0, describe=lambda: f"replicas {replicas(sb)}")

    await annotate(sb, None)
    await wait_for(lambda: replicas(sb) == 2 and condition(sb, "Paused") == "False",
                   describe=lambda: f"replicas {replicas(sb)}, status {scaled_object_status(sb)}")
    assert "pausedReplicaCount" not in scaled_object_status(sb)
    await sb.cluster.patch("apps", "deployments", "default", "web", {"spec": {"replicas": 9}})
    await wait_for(lambda: replicas(sb) == 3, describe=lambda: f"replicas {replicas(sb)}")


async def test_keda_scaled_object_without_its_target_is_not_ready(sb: Sandbox) -> None:
    await sb.cluster.create(*KEDA, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [{"type": "cpu", "metadata": {"value": "50"}}]},
    })
    await wait_for(lambda: condition(sb, "Ready") == "False", describe=lambda: f"status {scaled_object_status(sb)}")
    # The target arriving later is picked up (min 0, max 100 by default: 1 replica stays 1).
    await sb.cluster.create("apps", "deployments", deployment("web", namespace="default", replicas=1))
    await wait_for(lambda: condition(sb, "Ready") == "True", describe=lambda: f"status {scaled_object_status(sb)}")
    assert replicas(sb) == 1


@needs_kubectl
async def test_keda_kubectl_lists_scaled_objects(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment("web", namespace="default", replicas=1))
    await kubectl(sb, "apply", "-f", "-", stdin="""
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  maxReplicaCount: 4
  triggers:
  - type: prometheus
    name: rps
    metadata: {serverAddress: "http://prometheus:9090", query: "sum(rate(x[1m]))", threshold: "5"}
""")
    await wait_for(lambda: condition(sb, "Ready") == "True", describe=lambda: f"status {scaled_object_status(sb)}")
    table = await kubectl(sb, "get", "scaledobjects", "-n", "default")
    assert "SCALETARGETNAME" in table and "web" in table
    assert "web" in await kubectl(sb, "get", "so", "-n", "default", "-o", "name")


@needs_kubectl
async def test_keda_absent_from_a_default_sandbox() -> None:
    async with Sandbox(dataplane=False) as plain:
        assert plain.keda is None
        assert plain.cluster.registry.get(*KEDA) is None
        out = await kubectl(plain, "get", "scaledobjects", check=False)
        assert "doesn't have a resource type" in out
