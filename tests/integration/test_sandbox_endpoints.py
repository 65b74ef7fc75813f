"""Pods with loopback IPs, EndpointSlices and Endpoints, as kube-controller-manager keeps them for Services."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flaggerpy.sandbox import READY_ANNOTATION, Sandbox
from flaggerpy.sandbox.apiserver import tables
from flaggerpy.sandbox.controllers.pods import PodSettings, RangeClaim
from tests.integration.conftest import wait_for


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.3, pods=True,
                       pod_settings=PodSettings(termination_delay=0.3)) as sandbox:
        yield sandbox


def deployment(name: str, replicas: int = 2, version: str = "1", ready: bool = True) -> dict[str, Any]:
    annotations = {} if ready else {READY_ANNOTATION: "false"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"version": version, **annotations}},
                "spec": {"containers": [{"name": "app", "image": f"podinfo:{version}",
                                         "ports": [{"name": "http", "containerPort": 9898}]}]},
            },
        },
    }


def service(name: str, selector: str, target: Any = "http") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}},
        "spec": {"selector": {"app": selector},
                 "ports": [{"name": "http", "port": 80, "targetPort": target}]},
    }


def pods(sb: Sandbox, app: str) -> list[dict[str, Any]]:
    return [p for p in sb.cluster.list("", "pods", "default") if p["metadata"]["labels"].get("app") == app]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def slices(sb: Sandbox, svc: str) -> list[dict[str, Any]]:
    return [s for s in sb.cluster.list("discovery.k8s.io", "endpointslices", "default")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == svc]


def endpoints(sb: Sandbox, svc: str) -> list[dict[str, Any]]:
    return [e for s in slices(sb, svc) for e in s.get("endpoints") or []]


async def test_pods_get_loopback_ips_and_become_ready_with_their_deployment(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment("web", replicas=3))
    await wait_for(lambda: len(pods(sb, "web")) == 3 and all(ready(p) for p in pods(sb, "web")),
                   describe=lambda: f"pods: {pods(sb, 'web')}")
    ips = {p["status"]["podIP"] for p in pods(sb, "web")}
    assert len(ips) == 3
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("127.224.0.0/11") for ip in ips)
    owner = sb.cluster.get("apps", "deployments", "default", "web")
    for pod in pods(sb, "web"):
        assert pod["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        assert pod["metadata"]["annotations"]["version"] == "1"
        assert pod["metadata"]["labels"]["pod-template-hash"] in pod["metadata"]["name"]

    await sb.cluster.patch("apps", "deployments", "default", "web", {"spec": {"replicas": 0}})
    await wait_for(lambda: not pods(sb, "web"), describe=lambda: f"pods left: {pods(sb, 'web')}")


async def test_endpointslice_follows_pod_readiness_through_a_rollout(sb: Sandbox) -> None:
    await sb.cluster.create("", "services", service("web", "web"))
    await wait_for(lambda: len(slices(sb, "web")) == 1)
    placeholder = slices(sb, "web")[0]
    assert not placeholder.get("endpoints")  # a Service without pods still has its (empty) slice
    svc = sb.cluster.get("", "services", "default", "web")
    assert placeholder["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert placeholder["metadata"]["labels"] == {
        "team": "a", "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}

    await sb.cluster.create("apps", "deployments", deployment("web", replicas=2))
    # Starting pods are listed, not ready; then ready once the Deployment is.
    await wait_for(lambda: len(endpoints(sb, "web")) == 2)
    await wait_for(lambda: all(e["conditions"]["ready"] for e in endpoints(sb, "web")) and
                   len(endpoints(sb, "web")) == 2, describe=lambda: f"{endpoints(sb, 'web')}")
    piece = slices(sb, "web")[0]
    assert piece["addressType"] == "IPv4"
    assert piece["ports"] == [{"name": "http", "port": 9898, "protocol": "TCP"}]  # named targetPort resolved
    by_ip = {p["status"]["podIP"]: p for p in pods(sb, "web")}
    for endpoint in endpoints(sb, "web"):
        pod = by_ip[endpoint["addresses"][0]]
        assert endpoint["targetRef"] == {"kind": "Pod", "namespace": "default", "name": pod["metadata"]["name"],
                                         "uid": pod["metadata"]["uid"]}
        assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    ep = sb.cluster.get("", "endpoints", "default", "web")
    assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == sorted(by_ip)
    old_ips = set(by_ip)

    # A new template: its pods start not ready while the old ones serve; the old ones then terminate.
    await sb.cluster.update("apps", "deployments", deployment("web", replicas=2, version="2"))
    seen_terminating = False

    def rolled() -> bool:
        nonlocal seen_terminating
        eps = endpoints(sb, "web")
        seen_terminating |= any(e["conditions"] == {"ready": False, "serving": True, "terminating": True}
                                for e in eps if e["addresses"][0] in old_ips)
        new_ready = [e for e in eps if e["addresses"][0] not in old_ips and e["conditions"]["ready"]]
        # Never fewer than the two ready endpoints the old template gave while the new one is not ready.
        assert sum(e["conditions"]["ready"] for e in eps) >= 2 or len(new_ready) == 2, eps
        return len(eps) == 2 and len(new_ready) == 2

    await wait_for(rolled, describe=lambda: f"{endpoints(sb, 'web')}")
    assert seen_terminating
    ep = sb.cluster.get("", "endpoints", "default", "web")
    assert len(ep["subsets"][0]["addresses"]) == 2 and not set(a["ip"] for a in ep["subsets"][0]["addresses"]) & old_ips


async def test_crash_looping_template_keeps_old_endpoints_ready(sb: Sandbox) -> None:
    await sb.cluster.create("", "services", service("api", "api", target=9898))
    await sb.cluster.create("apps", "deployments", deployment("api", replicas=1))
    await wait_for(lambda: [e["conditions"]["ready"] for e in endpoints(sb, "api")] == [True])
    await sb.cluster.update("apps", "deployments", deployment("api", replicas=1, version="2", ready=False))
    await wait_for(lambda: len(endpoints(sb, "api")) == 2)
    conditions = sorted((e["conditions"]["ready"] for e in endpoints(sb, "api")), reverse=True)
    assert conditions == [True, False]
    ep = sb.cluster.get("", "endpoints", "default", "api")
    assert len(ep["subsets"][0]["addresses"]) == 1 and len(ep["subsets"][0]["notReadyAddresses"]) == 1


async def test_slices_and_endpoints_go_with_their_service(sb: Sandbox) -> None:
    await sb.cluster.create("", "services", service("gone", "gone"))
    await wait_for(lambda: len(slices(sb, "gone")) == 1 and
                   sb.cluster.get("", "endpoints", "default", "gone") is not None)
    await sb.cluster.delete("", "services", "default", "gone")
    await wait_for(lambda: not slices(sb, "gone") and sb.cluster.get("", "endpoints", "default", "gone") is None)


def test_sandboxes_side_by_side_hand_out_different_pod_ranges() -> None:
    first, second = RangeClaim(None), RangeClaim(None)
    try:
        assert not ipaddress.ip_network(first.cidr).overlaps(ipaddress.ip_network(second.cidr))
    finally:
        first.close()
        second.close()


async def test_kubectl_get_shows_pod_and_slice_columns(sb: Sandbox) -> None:
    await sb.cluster.create("", "services", service("cols", "cols"))
    await sb.cluster.create("apps", "deployments", deployment("cols", replicas=1))
    await wait_for(lambda: [e["conditions"]["ready"] for e in endpoints(sb, "cols")] == [True])
    [pod] = pods(sb, "cols")
    rows = tables.table(sb.cluster.resource("", "pods"), "v1", [pod], "1")
    columns = [c["name"] for c in rows["columnDefinitions"]]
    cells = dict(zip(columns, rows["rows"][0]["cells"], strict=True))
    assert (cells["Ready"], cells["Status"], cells["Restarts"], cells["IP"]) == (
        "1/1", "Running", 0, pod["status"]["podIP"])
    rows = tables.table(sb.cluster.resource("discovery.k8s.io", "endpointslices"), "v1", slices(sb, "cols"), "1")
    columns = [c["name"] for c in rows["columnDefinitions"]]
    cells = dict(zip(columns, rows["rows"][0]["cells"], strict=True))
    assert (cells["AddressType"], cells["Ports"], cells["Endpoints"]) == ("IPv4", "9898", pod["status"]["podIP"])
