"""The sandbox suite's release scenarios, run unchanged on a real control plane (kube-apiserver, etcd,
kube-controller-manager, kube-scheduler, kwok), plus the ones only a real cluster can tell.

Imported scenarios use this directory's fixtures: the Deployments become ready through Kubernetes' own Deployment
and ReplicaSet controllers, the scheduler and kwok's fake kubelets; garbage collection is kube-controller-manager's;
routes are accepted by Traefik, the cluster's Gateway controller (no sandbox Gateway sets HTTPRoute status here);
and the controller authenticates with its ServiceAccount token under deploy/rbac.
"""

from __future__ import annotations

from typing import Any

import yaml

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.resources import PODS
from tests.integration.conftest import ControllerFactory, wait_for
from tests.integration.test_engine_canary import (
    test_full_canary_release_promotes,
    test_initialization_creates_primary_services_and_route,
)
from tests.integration.test_engine_resilience import (
    test_foreign_route_is_never_overwritten,
    test_route_repair_restores_weights_mid_analysis,
    test_route_weight_edits_are_reverted_and_foreign_labels_kept,
)
from tests.integration.test_engine_rollback import test_failed_checks_roll_back_at_threshold
from tests.integration.test_engine_strategies import (
    test_ab_testing_routes_matched_users_to_canary,
    test_blue_green_with_mirroring,
)
from tests.manifests import canary, deployment
from tests.real.harness import TRAEFIK_CONTROLLER, RealCluster

__all__ = [
    "test_ab_testing_routes_matched_users_to_canary",
    "test_blue_green_with_mirroring",
    "test_failed_checks_roll_back_at_threshold",
    "test_foreign_route_is_never_overwritten",
    "test_full_canary_release_promotes",
    "test_initialization_creates_primary_services_and_route",
    "test_route_repair_restores_weights_mid_analysis",
    "test_route_weight_edits_are_reverted_and_foreign_labels_kept",
]

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
ROUTES = ("gateway.networking.k8s.io", "httproutes")
REPAIR_WITHIN = 10.0


async def test_the_route_is_accepted_by_traefik_and_owned_objects_go_with_the_canary(
    cluster: RealCluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller():
        await cluster.wait_phase("Initialized")
    route = cluster.get(*ROUTES, "podinfo")
    assert route is not None
    [parent] = route["status"]["parents"]
    assert parent["controllerName"] == TRAEFIK_CONTROLLER
    accepted = {c["type"]: c for c in parent["conditions"]}["Accepted"]
    assert accepted["status"] == "True" and accepted["observedGeneration"] == route["metadata"]["generation"]
    # Real pods back the primary: scheduled on a fake node, given a loopback IP, ready.
    pods, _ = await cluster.kube.list(PODS, cluster.namespace, label_selector="app=podinfo-primary")
    assert len(pods) == 2
    assert all(p["status"]["podIP"].startswith("127.") and p["spec"]["nodeName"].startswith("kwok-node-")
               for p in pods)
    # kube-controller-manager's garbage collector removes what the Canary owns once it is gone.
    await cluster.delete("flagger.app", "canaries", "podinfo")
    owned = (("apps", "deployments", "podinfo-primary"), (*ROUTES, "podinfo"), ("", "services", "podinfo-canary"))

    def left() -> list[str]:
        return [f"{plural} {name}" for group, plural, name in owned if cluster.get(group, plural, name) is not None]

    await wait_for(lambda: not left(), 30, lambda: f"not collected: {left()}")
    assert cluster.get("apps", "deployments", "podinfo") is not None


async def test_deleted_or_edited_services_are_repaired(cluster: RealCluster, run_controller: ControllerFactory) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller():
        await cluster.wait_phase("Initialized")
        await cluster.delete("", "services", "podinfo-canary")
        await wait_for(lambda: cluster.get("", "services", "podinfo-canary") is not None, REPAIR_WITHIN,
                       lambda: "service podinfo-canary not re-created")
        apex = cluster.get("", "services", "podinfo")
        assert apex is not None
        apex["spec"]["selector"] = {"app": "somebody-else"}
        apex["metadata"]["annotations"] = {"owner": "ops"}
        await cluster.update("", "services", apex)
        await wait_for(lambda: (cluster.get("", "services", "podinfo") or {})["spec"]["selector"]
                       == {"app": "podinfo-primary"}, REPAIR_WITHIN,
                       lambda: f"apex selector {cluster.get('', 'services', 'podinfo')}")
    apex = cluster.get("", "services", "podinfo")
    assert apex is not None and apex["metadata"]["annotations"]["owner"] == "ops"


def _cookie_rules(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in route["spec"]["rules"]
            if any(h.get("name", "").lower() == "cookie" for m in rule.get("matches") or []
                   for h in m.get("headers") or [])]


async def test_session_affinity_pins_users_to_the_canary_during_the_run(
    cluster: RealCluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 2, "maxWeight": 30, "stepWeight": 10,
        "sessionAffinity": {"cookieName": "flagger-cookie", "maxAge": 120},
    }))
    sticky: list[tuple[int, list[dict[str, int]], bool]] = []

    def observe() -> bool:
        route = cluster.get(*ROUTES, "podinfo")
        status = cluster.status()
        if route is not None and status.get("phase") == "Progressing" and status.get("canaryWeight"):
            rules = [{b["name"]: b.get("weight", 1) for b in r["backendRefs"]} for r in _cookie_rules(route)]
            canary_backend = route["spec"]["rules"][-1]["backendRefs"][-1]
            hands_out = "flagger-cookie=" in str(canary_backend.get("filters"))
            sticky.append((status["canaryWeight"], rules, hands_out))
        return status.get("phase") == "Succeeded"

    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(observe, 60, lambda: f"status {cluster.status()}")
    # While the canary gets traffic its responses hand out the cookie, and a rule of its own sends the cookie's
    # holders to the canary (the real API server validated each of these routes, CEL rules included).
    assert any(rules == [{"podinfo-primary": 0, "podinfo-canary": 100}] and hands_out
               for _, rules, hands_out in sticky), sticky
    route = cluster.get(*ROUTES, "podinfo")
    assert route is not None
    weighted = route["spec"]["rules"][-1]
    assert [(b["name"], b.get("weight")) for b in weighted["backendRefs"]] == [
        ("podinfo-primary", 100), ("podinfo-canary", 0)]
    # After the run the cookie's rule only tells its holders to drop it.
    assert all("Max-Age=-1" in str(rule.get("filters")) for rule in _cookie_rules(route))


async def test_a_release_reads_nothing_and_writes_each_weight_once_on_a_real_cluster(
    cluster: RealCluster, run_controller: ControllerFactory, kube: KubeClient
) -> None:
    """Invariant 5 where the server defaults built-in kinds, and Traefik writes route status and kube-controller-
    manager Deployment status all the time: every one of those changes reaches the controller, none is a write."""
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 1, "maxWeight": 30, "stepWeight": 10}))
    requests: list[tuple[str, str]] = []
    weights: list[int] = []

    def observe() -> bool:
        weight = dict(cluster.route_weights())["podinfo-canary"]
        if not weights or weights[-1] != weight:
            weights.append(weight)
        return cluster.status().get("phase") == "Succeeded"

    async with run_controller():
        await cluster.wait_phase("Initialized")
        kube.add_observer(lambda verb, resource, status, seconds: requests.append((verb, resource)))
        await cluster.set_image(NEW_IMAGE)
        await wait_for(observe, 60, lambda: f"status {cluster.status()}")
    assert weights == [0, 10, 20, 30, 0]
    assert [r for r in requests if r[0] == "get"] == [], requests
    route_writes = [r for r in requests if r[1].startswith("httproutes") and r[0] in ("patch", "update", "create")]
    assert len(route_writes) == 4, requests  # 10, 20, 30, then back to the primary


async def test_bad_canaries_are_refused_by_the_real_crd_schema_naming_the_fields(cluster: RealCluster) -> None:
    manifest = canary()
    manifest["spec"]["service"]["port"] = "http"
    manifest["spec"]["analysis"]["stepWeight"] = 0
    manifest["spec"]["analysis"]["interval"] = 5
    out = cluster.session.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest), check=False)
    assert out.returncode != 0
    for field in ("spec.service.port", "spec.analysis.stepWeight", "spec.analysis.interval"):
        assert field in out.stderr, out.stderr
    assert "is invalid" in out.stderr and cluster.get("flagger.app", "canaries", "podinfo") is None


async def test_a_canary_whose_route_would_break_a_gateway_api_cel_rule_is_refused_before_any_route(
    cluster: RealCluster, run_controller: ControllerFactory
) -> None:
    """A match path without its leading slash passes the Canary's schema but not the HTTPRoute's CEL rule (which
    kube-apiserver enforces, see hack/fidelity.py's cel_rules): the controller names the field itself instead of
    sending a route the API server would refuse."""
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "1s", "threshold": 2, "iterations": 2, "match": [{"uri": {"prefix": "api"}}]}))

    def refused() -> bool:
        return any(c.get("reason") == "InvalidSpec" and "spec.analysis.match[0].uri.prefix" in c.get("message", "")
                   for c in cluster.status().get("conditions") or [])

    async with run_controller():
        await wait_for(refused, 60, lambda: f"status {cluster.status()}")
    assert cluster.get(*ROUTES, "podinfo") is None
