"""What a release costs the API server: no reads (everything comes from caches), one route write per weight."""

from __future__ import annotations

from tests.integration.conftest import Cluster, ControllerFactory, ScriptedAnalyzer, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
ANALYSIS = {"interval": "300ms", "threshold": 1, "maxWeight": 30, "stepWeight": 10}


async def _release(cluster: Cluster, run_controller: ControllerFactory, phase: str,
                   provider: str = "gatewayapi:v1") -> list[int]:
    """Roll out a new image and return the canary weights the route went through."""
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=ANALYSIS, provider=provider))
    weights: list[int] = []

    def observe() -> bool:
        weight = dict(cluster.route_weights())["podinfo-canary"]
        if not weights or weights[-1] != weight:
            weights.append(weight)
        return cluster.status().get("phase") == phase

    async with run_controller():
        await cluster.wait_phase("Initialized")
        cluster.sb.counters.reset()
        await cluster.set_image(NEW_IMAGE)
        await wait_for(observe, 20, lambda: f"status {cluster.status()}")
    return weights


async def test_a_promoted_release_reads_nothing_and_writes_each_weight_once(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    weights = await _release(cluster, run_controller, "Succeeded")
    counters = cluster.sb.counters
    assert weights == [0, 10, 20, 30, 0]
    assert counters.reads() == 0, counters.snapshot()
    assert counters.get("patch", "httproutes") == 4, counters.snapshot()  # 10, 20, 30, then back to the primary


async def test_a_rollback_takes_traffic_away_without_reading_the_route(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    analyzer.metrics_pass = False
    weights = await _release(cluster, run_controller, "Failed")
    counters = cluster.sb.counters
    assert weights == [0, 10, 0]
    assert counters.reads() == 0, counters.snapshot()
    assert counters.get("patch", "httproutes") == 2, counters.snapshot()
    assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]


async def test_a_v1beta1_route_is_read_from_its_own_cache_once_a_canary_uses_it(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    weights = await _release(cluster, run_controller, "Succeeded", provider="gatewayapi:v1beta1")
    counters = cluster.sb.counters
    assert weights == [0, 10, 20, 30, 0]
    assert counters.reads() == 0, counters.snapshot()
