"""Spec fields Flagger accepts but ignores: one Warning Event per spec generation, and the release goes on."""

from __future__ import annotations

from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, wait_for
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
IGNORED = "spec.analysis.stepWeight: ignored: stepWeights is set and takes precedence"
BOTH = {"interval": "1s", "threshold": 2, "stepWeight": 10, "stepWeights": [20, 40]}


def _ignored(events: RecordingEvents) -> list[tuple[str, str]]:
    return [(type_, message) for key, type_, reason, message in events.events
            if key == f"{NAMESPACE}/podinfo" and reason == "IgnoredFields"]


def _condition(cluster: Cluster) -> dict[str, object] | None:
    return next((c for c in cluster.status().get("conditions") or [] if c.get("type") == "IgnoredFields"), None)


async def test_ignored_step_weight_warns_once_and_step_weights_win(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=BOTH))
    weights: list[int] = []

    def record() -> bool:
        weight = dict(cluster.route_weights()).get("podinfo-canary", 0)
        if not weights or weights[-1] != weight:
            weights.append(weight)
        return cluster.status().get("phase") == "Succeeded"

    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(record, 30, lambda: f"status {cluster.status()}")

    assert weights[:3] == [0, 20, 40]
    assert 10 not in weights
    assert _ignored(events) == [("Warning", f"Ignored fields of podinfo.{NAMESPACE}: {IGNORED}")]
    condition = _condition(cluster)
    assert condition is not None and condition["message"] == IGNORED
    assert condition["observedGeneration"] == cluster.get("flagger.app", "canaries", "podinfo")["metadata"][
        "generation"]


async def test_each_spec_edit_warns_again_and_a_fixed_spec_clears_the_condition(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=BOTH))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        await wait_for(lambda: len(_ignored(events)) == 1, 10, lambda: f"events {events.events}")

        await cluster.sb.cluster.patch("flagger.app", "canaries", NAMESPACE, "podinfo",
                                       {"spec": {"analysis": {"threshold": 3}}})
        await wait_for(lambda: len(_ignored(events)) == 2, 10, lambda: f"events {events.events}")
        generation = cluster.get("flagger.app", "canaries", "podinfo")["metadata"]["generation"]
        await wait_for(lambda: (_condition(cluster) or {}).get("observedGeneration") == generation, 10,
                       lambda: f"status {cluster.status()}")

        await cluster.sb.cluster.patch("flagger.app", "canaries", NAMESPACE, "podinfo",
                                       {"spec": {"analysis": {"stepWeight": None}}})
        await wait_for(lambda: _condition(cluster) is None, 10, lambda: f"status {cluster.status()}")
    assert len(_ignored(events)) == 2
