"""A progressive canary release end to end against the sandbox: initialisation, 10 → 50 by 10, promotion."""

from __future__ import annotations

from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, ScriptedAnalyzer, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"


async def test_initialization_creates_primary_services_and_route(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller():
        status = await cluster.wait_phase("Initialized")
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary is not None
    assert primary["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
    for name, selector in (("podinfo", "podinfo-primary"), ("podinfo-primary", "podinfo-primary"),
                           ("podinfo-canary", "podinfo")):
        svc = cluster.get("", "services", name)
        assert svc is not None and svc["spec"]["selector"] == {"app": selector}
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert status["canaryWeight"] == 0 and status["lastAppliedSpec"] == status["lastPromotedSpec"]
    assert "Initialization done! podinfo.test" in events.messages("test/podinfo")


async def test_full_canary_release_promotes(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    seen: list[list[tuple[str, int]]] = []

    def record_route() -> bool:
        weights = cluster.route_weights()
        if not seen or seen[-1] != weights:
            seen.append(weights)
        assert sum(w for _, w in weights) == 100
        return cluster.status().get("phase") == "Succeeded"

    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(record_route, 30, lambda: f"status {cluster.status()}")

    canary_weights = [dict(w)["podinfo-canary"] for w in seen]
    assert canary_weights[:6] == [0, 10, 20, 30, 40, 50]
    assert canary_weights[-1] == 0
    assert max(canary_weights) == 50
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    status = cluster.status()
    assert status["lastPromotedSpec"] == status["lastAppliedSpec"]
    messages = events.messages("test/podinfo")
    assert "New revision detected! Scaling up podinfo.test" in messages
    assert "Advance podinfo.test canary weight 20" in messages
    assert "Promotion completed! Scaling down podinfo.test" in messages
    # Metrics are not checked before traffic flows: one check per weight 10..50.
    assert [c.canary_weight for c in analyzer.metric_calls] == [10, 20, 30, 40, 50]


async def test_gradual_promotion_shifts_back_by_step_weight_promotion(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "maxWeight": 50, "stepWeight": 25, "stepWeightPromotion": 20,
    }))
    weights: list[int] = []

    def observe() -> bool:
        weight = dict(cluster.route_weights())["podinfo-canary"]
        if not weights or weights[-1] != weight:
            weights.append(weight)
        return cluster.status().get("phase") == "Succeeded"

    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(observe, 30, lambda: f"status {cluster.status()}")
    # Up by 25 to 50, then (primary already promoted) back by 20 per interval.
    assert weights == [0, 25, 50, 30, 10, 0]
    messages = events.messages("test/podinfo")
    assert "Advance podinfo.test primary weight 70" in messages
    assert "Advance podinfo.test primary weight 90" in messages


async def test_weights_wait_until_the_gateway_accepts_the_route(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    manifest = canary()
    manifest["spec"]["service"]["gatewayRefs"] = [{"name": "missing-gateway", "namespace": "gateway"}]
    await cluster.create("flagger.app", "canaries", manifest)
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(lambda: any(c.get("reason") == "RouteNotAccepted"
                                   for c in cluster.status().get("conditions") or []), 10,
                       lambda: f"status {cluster.status()}")
        assert cluster.status()["canaryWeight"] == 0
        assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
        obj = cluster.canary()
        obj["spec"]["service"]["gatewayRefs"] = [{"name": "public-gateway", "namespace": "gateway"}]
        await cluster.update("flagger.app", "canaries", obj)
        await cluster.wait_phase("Succeeded")
    assert not any(c["type"] == "Halted" for c in cluster.status()["conditions"])
