"""A/B testing and blue/green (with and without mirroring): the route at every step, then promotion."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"


def rules(cluster: Cluster) -> list[dict[str, Any]]:
    """Each rule of the route as {backend: weight}, plus whether it mirrors and whether it matches a header."""
    route = cluster.get("gateway.networking.k8s.io", "httproutes", "podinfo")
    out = []
    for rule in route["spec"]["rules"]:
        entry: dict[str, Any] = {b["name"]: b.get("weight", 1) for b in rule["backendRefs"]}
        entry["mirror"] = any(f.get("type") == "RequestMirror" for f in rule.get("filters") or [])
        entry["header"] = any(m.get("headers") for m in rule.get("matches") or [])
        out.append(entry)
    return out


async def run_release(cluster: Cluster, run_controller: ControllerFactory) -> list[tuple[str, int, str]]:
    """Roll out a new image and record (phase, iterations, route) at every change until Succeeded."""
    seen: list[tuple[str, int, str]] = []

    def observe() -> bool:
        status = cluster.status()
        snapshot = (status.get("phase", ""), status.get("iterations", 0), repr(rules(cluster)))
        if not seen or seen[-1] != snapshot:
            seen.append(snapshot)
        return status.get("phase") == "Succeeded"

    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(observe, 30, lambda: f"status {cluster.status()}")
    primary = cluster.get("apps", "deployments", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
    return seen


async def test_ab_testing_routes_matched_users_to_canary(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "iterations": 3,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
    }))
    seen = await run_release(cluster, run_controller)
    analysing = [eval(r) for phase, it, r in seen if phase == "Progressing" and it >= 1]
    # A step persists its status before it routes: the first sight of iteration 1 may still show the route before it.
    if analysing and analysing[0][0]["podinfo-canary"] == 0:
        analysing = analysing[1:]
    assert analysing, seen
    for matched, default in analysing:
        assert matched["header"] and matched["podinfo-canary"] == 100 and matched["podinfo-primary"] == 0
        assert not default["header"] and default == {"podinfo-primary": 100, "mirror": False, "header": False}
    final = rules(cluster)
    assert final[0]["podinfo-canary"] == 0 and final[0]["podinfo-primary"] == 100
    messages = events.messages("test/podinfo")
    assert [m for m in messages if "iteration" in m] == [
        "Advance podinfo.test canary iteration 1/3",
        "Advance podinfo.test canary iteration 2/3",
        "Advance podinfo.test canary iteration 3/3",
    ]


async def test_blue_green_switches_all_traffic_at_promotion(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "iterations": 2,
    }))
    seen = await run_release(cluster, run_controller)
    canary_weights = []
    for _, _, route in seen:
        [rule] = eval(route)
        assert not rule["mirror"]
        if not canary_weights or canary_weights[-1] != rule["podinfo-canary"]:
            canary_weights.append(rule["podinfo-canary"])
    # Dark during the iterations, everything at the switch, back to the (promoted) primary at the end.
    assert canary_weights == [0, 100, 0]
    # The switch is persisted in the status before the route follows it, so the first Promoting snapshots may still
    # show the dark route; once switched, it stays switched until the promotion is finished.
    switched = [eval(r)[0]["podinfo-canary"] for phase, _, r in seen if phase == "Promoting"]
    assert 100 in switched and switched[switched.index(100):] == [100] * (len(switched) - switched.index(100))
    assert set(switched) <= {0, 100}
    assert rules(cluster) == [{"podinfo-primary": 100, "podinfo-canary": 0, "mirror": False, "header": False}]


async def test_blue_green_with_mirroring(cluster: Cluster, run_controller: ControllerFactory) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "iterations": 2, "mirror": True, "mirrorWeight": 50,
    }))
    seen = await run_release(cluster, run_controller)
    # Each step's status is persisted before its route follows, so a snapshot may pair a step with the previous route:
    # the first sight of iteration 1 may still show the dark route from before it (canary weight 0 too, unmirrored).
    mirrored = [eval(r)[0] for phase, it, r in seen if phase == "Progressing" and it >= 1]
    if mirrored and not mirrored[0]["mirror"]:
        mirrored = mirrored[1:]
    mirrored = [r for r in mirrored if r["podinfo-canary"] == 0]
    assert mirrored and all(r["mirror"] for r in mirrored)
    assert any(eval(r)[0]["podinfo-canary"] == 100 for phase, _, r in seen if phase == "Promoting")
    assert rules(cluster) == [{"podinfo-primary": 100, "podinfo-canary": 0, "mirror": False, "header": False}]
