"""Failing checks roll a canary back; invalid specs become a condition and an Event while others carry on."""

from __future__ import annotations

from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, ScriptedAnalyzer, wait_for
from tests.manifests import canary, deployment

OLD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"


async def test_failed_checks_roll_back_at_threshold(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
    }))
    weights: list[int] = []

    def observe() -> bool:
        route = dict(cluster.route_weights())
        assert route["podinfo-primary"] + route["podinfo-canary"] == 100
        assert route["podinfo-canary"] <= 50
        weights.append(route["podinfo-canary"])
        return cluster.status().get("phase") == "Failed"

    async with run_controller():
        await cluster.wait_phase("Initialized")
        analyzer.metrics_pass = False
        await cluster.set_image(NEW_IMAGE)
        await wait_for(observe, 20, lambda: f"status {cluster.status()}")

    status = cluster.status()
    # Failed resets failedChecks, as Flagger's SyncStatus does; the Event keeps the count.
    assert status["failedChecks"] == 0 and status["canaryWeight"] == 0
    # Invariant 3: all traffic on the primary, which still runs the last promoted spec.
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert status["lastPromotedSpec"] != status["lastAppliedSpec"]
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
    assert max(weights) == 10  # one step to 10 %, then two failed checks
    messages = events.messages("test/podinfo")
    assert "Rolling back podinfo.test failed checks threshold reached 2" in messages
    assert "Canary failed! Scaling down podinfo.test" in messages
    assert "Halt podinfo.test advancement request-success-rate 42.00 < 99" in messages, messages


async def test_rollback_webhook_aborts_analysis(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
    }))
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("canaryWeight") == 20, 10)
        analyzer.rollback = True
        await cluster.wait_phase("Failed")
    assert "Rolling back podinfo.test manual webhook invoked" in events.messages("test/podinfo")
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]


async def test_canary_that_never_gets_ready_fails_at_progress_deadline(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(progressDeadlineSeconds=1, analysis={
        "interval": "300ms", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
    }))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        dep = cluster.get("apps", "deployments", "podinfo")
        dep["spec"]["template"]["metadata"]["annotations"] = {"sandbox.flaggerpy.io/ready": "false"}
        await cluster.update("apps", "deployments", dep)
        await cluster.wait_phase("Failed")
    messages = events.messages("test/podinfo")
    assert any(m.startswith("Rolling back podinfo.test progress deadline exceeded") for m in messages)
    # Invariant 2: the canary never received traffic.
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert not any(m.startswith("Advance podinfo.test") for m in messages)


async def test_invalid_spec_is_a_condition_and_event_while_others_progress(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("apps", "deployments", deployment("broken"))
    await cluster.create("flagger.app", "canaries", canary("broken", analysis={
        "interval": "1s", "stepWeight": 60, "maxWeight": 50,
    }))
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller():
        await cluster.wait_phase("Initialized")
        await wait_for(lambda: bool(cluster.status("broken").get("conditions")), 10)
        await cluster.set_image(NEW_IMAGE)
        await cluster.wait_phase("Succeeded", within=30)
    [cond] = cluster.status("broken")["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Promoted", "False", "InvalidSpec")
    assert cond["message"] == "spec.analysis.maxWeight: must be >= stepWeight (60)"
    warnings = [e for e in events.events if e[0] == "test/broken"]
    assert warnings == [("test/broken", "Warning", "InvalidSpec",
                         "spec.analysis.maxWeight: must be >= stepWeight (60)")]
    # The broken canary's workload was left alone.
    assert cluster.get("apps", "deployments", "broken-primary") is None


async def test_target_without_identity_label_is_a_condition(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    dep = deployment()
    dep["spec"]["selector"]["matchLabels"] = {"tier": "web"}
    dep["spec"]["template"]["metadata"]["labels"] = {"tier": "web"}
    await cluster.create("apps", "deployments", dep)
    await cluster.create("flagger.app", "canaries", canary())
    async with run_controller():
        await wait_for(lambda: any(c.get("reason") == "InvalidTarget"
                                   for c in cluster.status().get("conditions") or []), 10)
    [halted] = [c for c in cluster.status()["conditions"] if c["type"] == "Halted"]
    assert halted["message"] == ("Deployment podinfo: spec.selector.matchLabels: needs one of the labels app, name, "
                                 "app.kubernetes.io/name")
    assert ("test/podinfo", "Warning", "InvalidTarget", halted["message"]) in events.events
