"""The real kubectl against the sandbox: apply, get -o yaml, patch (merge, strategic, json), delete, get -w."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from flaggerpy.sandbox import Sandbox
from tests.integration.kubectl import kubectl
from tests.paths import GATEWAY_API_CRDS

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

GATEWAY_CRDS = GATEWAY_API_CRDS
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {app: podinfo}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - name: podinfo
        image: podinfo:6.0.0
        ports: [{containerPort: 9898, name: http}]
"""


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.05) as sandbox:
        yield sandbox


async def test_apply_get_patch_delete(sb: Sandbox, tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(DEPLOYMENT)
    assert "created" in await kubectl(sb, "apply", "-f", str(manifest))
    manifest.write_text(DEPLOYMENT.replace("6.0.0", "6.0.1"))
    assert "configured" in await kubectl(sb, "apply", "-f", str(manifest))

    got = yaml.safe_load(await kubectl(sb, "get", "deployment", "podinfo", "-o", "yaml"))
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:6.0.1"
    assert got["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]

    await kubectl(sb, "patch", "deployment", "podinfo", "--type=merge", "-p", '{"metadata":{"labels":{"x":"1"}}}')
    await kubectl(
        sb,
        "patch",
        "deployment",
        "podinfo",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"envoy:1"}]}}}}',
    )
    await kubectl(
        sb,
        "patch",
        "deployment",
        "podinfo",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":3}]',
    )
    got = yaml.safe_load(await kubectl(sb, "get", "deploy", "podinfo", "-o", "yaml"))
    assert got["metadata"]["labels"] == {"app": "podinfo", "x": "1"}
    assert [c["name"] for c in got["spec"]["template"]["spec"]["containers"]] == ["podinfo", "sidecar"]
    assert got["spec"]["replicas"] == 3

    table = await kubectl(sb, "get", "deployments")
    assert table.splitlines()[0].split()[:2] == ["NAME", "READY"]

    assert "deleted" in await kubectl(sb, "delete", "deployment", "podinfo")
    missing = await kubectl(sb, "get", "deployment", "podinfo", check=False)
    assert 'deployments.apps "podinfo" not found' in missing


async def test_get_watch_sees_an_update(sb: Sandbox) -> None:
    await sb.cluster.create("", "configmaps", {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"v": "1"}})
    env = dict(os.environ, KUBECONFIG=str(sb.kubeconfig_path))
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "get",
        "configmap",
        "cfg",
        "-w",
        "-o",
        'jsonpath={.data.v}{"\\n"}',
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.strip() == b"1"
        assert sb.server is not None
        # kubectl watches from resourceVersion 0 after printing, so change the object only once it watches.
        for _ in range(600):
            if sb.server.open_watches:
                break
            await asyncio.sleep(0.05)
        await sb.cluster.patch("", "configmaps", "default", "cfg", {"data": {"v": "2"}})
        second = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert second.strip() == b"2"
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.skipif(not GATEWAY_CRDS.is_dir(), reason="Gateway API CRDs not found next to the repository")
async def test_apply_gateway_api_crds_and_routes(sb: Sandbox, tmp_path: Path) -> None:
    await kubectl(sb, "apply", "-f", str(GATEWAY_CRDS))
    await kubectl(sb, "wait", "--for=condition=established", "crd/httproutes.gateway.networking.k8s.io")
    route = tmp_path / "route.yaml"
    route.write_text("""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: podinfo}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: podinfo-primary, port: 9898}, {name: podinfo-canary, port: 9898, weight: 0}]
""")
    await kubectl(sb, "apply", "-f", str(route))
    got = yaml.safe_load(await kubectl(sb, "get", "httproute", "podinfo", "-o", "yaml"))
    assert got["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1
    rejected = await kubectl(
        sb,
        "patch",
        "httproute",
        "podinfo",
        "--type=merge",
        "-p",
        '{"spec":{"rules":[{"backendRefs":[{"name":"p","port":9898,"weight":-1}]}]}}',
        check=False,
    )
    assert "spec.rules[0].backendRefs[0].weight" in rejected
    assert "greater than or equal to 0" in rejected


async def test_imperative_create_commands(sb: Sandbox) -> None:
    await kubectl(sb, "create", "namespace", "test")
    await kubectl(sb, "create", "deployment", "web", "--image=nginx:1", "--port=80", "--replicas=2", "-n", "test")
    await kubectl(sb, "create", "service", "clusterip", "web", "--tcp=80:8080", "-n", "test")
    await kubectl(sb, "create", "secret", "generic", "creds", "--from-literal=token=s3cret", "-n", "test")
    dep = sb.cluster.get("apps", "deployments", "test", "web")
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    svc = sb.cluster.get("", "services", "test", "web")
    assert svc is not None and svc["spec"]["ports"][0]["targetPort"] == 8080
    secret = sb.cluster.get("", "secrets", "test", "creds")
    assert secret is not None and secret["data"] == {"token": "czNjcmV0"} and secret["type"] == "Opaque"
    listing = await kubectl(sb, "get", "secrets", "-n", "test")
    assert listing.splitlines()[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert listing.splitlines()[1].split()[:3] == ["creds", "Opaque", "1"]
