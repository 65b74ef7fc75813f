"""Three releases at once through real parts: the controller as its own process judging real Prometheus data about
real HTTP load that ``hey`` (started by the load tester's pre-rollout webhook) sends through the sandbox's Gateway.

- ``good``: a healthy new revision walks 10 → 50 and is promoted;
- ``errors``: 20% of the new revision's answers are 500s, the builtin request-success-rate fails, it rolls back;
- ``slow``: the new revision answers in ~1 s, a MetricTemplate with ``histogram_quantile`` over the Envoy
  histogram fails its p99 bound, it rolls back.

Throughout, every HTTPRoute version is checked (weights sum to 100, never above maxWeight, steps never skipped) and
the share of requests the data plane actually sent to each canary while a set of weights was in force is compared
with those weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.release_harness import (
    ERROR_RATE_ANNOTATION,
    LATENCY_ANNOTATION,
    History,
    Release,
    RouteObserver,
    assert_split_follows_weights,
    real_parts,
    requires_tools,
)
from tests.manifests import NAMESPACE, canary, deployment

pytestmark = [pytest.mark.e2e, requires_tools, pytest.mark.asyncio(loop_scope="module")]

OLD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
NAMES = ["good", "errors", "slow"]
P99_LIMIT_MS = 500
# Flagger's Gateway API tutorial latency template, with the Envoy histogram in milliseconds.
LATENCY_QUERY = (
    "histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{"
    'envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))'
)
METRIC_WINDOW = "6s"
# The first check may run before Prometheus has scraped any canary request: no data then is not a failure. The data
# gate (see release_harness.DataGate) holds every later traffic increase until the data is there.
METRICS = [
    {"name": "request-success-rate", "interval": METRIC_WINDOW, "thresholdRange": {"min": 99}, "onNoData": "skip"},
    {"name": "latency", "interval": METRIC_WINDOW, "templateRef": {"name": "latency", "namespace": NAMESPACE},
     "thresholdRange": {"max": P99_LIMIT_MS}, "onNoData": "skip"},
]
RELEASE_TIMEOUT = 90.0
MIN_WINDOW_REQUESTS = 50
LOADED_WINDOW = 300
FINAL_REQUESTS = 20


def _latency_template(prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "latency", "namespace": NAMESPACE},
        "spec": {"provider": {"type": "prometheus", "address": prometheus_url}, "query": LATENCY_QUERY},
    }


def _analysis(release: Release, name: str, interval: str, rps_per_worker: int, workers: int) -> dict[str, Any]:
    return {
        "interval": interval, "threshold": 2, "maxWeight": 50, "stepWeight": 10, "metrics": METRICS,
        "webhooks": [*release.load_webhooks(name, seconds=60, rps_per_worker=rps_per_worker, workers=workers),
                     *release.data_gate_webhooks()],
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def released(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Release, RouteObserver]]:
    """Run the three releases to their end once; the tests below examine what happened."""
    workdir: Path = tmp_path_factory.mktemp("release")
    async with real_parts(workdir, METRIC_WINDOW) as release:
        await release.create("flagger.app", "metrictemplates", _latency_template(release.prometheus.url))
        # Most of the load goes to "good", whose windows carry the traffic-split comparison.
        load = {"good": ("3s", 75, 4), "errors": ("2s", 25, 2), "slow": ("2s", 25, 2)}
        for name, (interval, rps, workers) in load.items():
            await release.create("apps", "deployments", deployment(name, OLD_IMAGE))
            await release.create("flagger.app", "canaries", canary(name, _analysis(release, name, interval, rps,
                                                                                     workers)))
        observer = RouteObserver(release.sandbox, NAMES)
        observer.start()
        # Every step of "good" lasts until its traffic is enough to compare the split with the weights.
        release.data_gate.hold_until(lambda name: name != "good" or observer.window_requests(name) >= LOADED_WINDOW)
        try:
            for name in NAMES:
                await observer.wait_phase(name, {"Initialized"}, RELEASE_TIMEOUT)
            await release.release("good", NEW_IMAGE)
            await release.release("errors", NEW_IMAGE, {ERROR_RATE_ANNOTATION: "0.2"})
            await release.release("slow", NEW_IMAGE, {LATENCY_ANNOTATION: "1s"})
            for name in NAMES:
                try:
                    await observer.wait_phase(name, {"Succeeded", "Failed"}, RELEASE_TIMEOUT)
                except TimeoutError:
                    pytest.fail(f"{name} did not finish: phases {observer.histories[name].phases}\n"
                                f"controller output:\n{release.controller.tail()}")
            # hey may have ended before the final switch (a long release outlasts its 60 s): these requests are
            # routed with the final weights, so every history ends with the window the rollback/promotion opened.
            for name in NAMES:
                await release.send(name, FINAL_REQUESTS)
        finally:
            await observer.stop()
        yield release, observer


def _assert_route_invariants(history: History) -> None:
    for weights in history.weights:
        assert sum(weights.values()) == 100, f"{history.name}: weights {weights} do not sum to 100"
        assert weights.get(f"{history.name}-canary", 0) <= 50, f"{history.name}: above maxWeight: {weights}"
    rising = [w for w in history.canary_weights if w > 0]
    assert rising == list(range(10, 10 * len(rising) + 1, 10)), f"{history.name}: steps skipped: {rising}"


def _assert_split_matches(history: History) -> None:
    for window in history.windows:
        assert window.weights in history.weights, (
            f"{history.name}: the data plane routed with {window.weights}, which no HTTPRoute version had: "
            f"{history.weights}"
        )
    assert_split_follows_weights(history.name, history.windows, "the data plane's counters", MIN_WINDOW_REQUESTS)


async def test_healthy_release_is_promoted_and_the_split_follows_the_weights(
    released: tuple[Release, RouteObserver],
) -> None:
    release, observer = released
    history = observer.histories["good"]
    assert history.phase == "Succeeded", f"phases {history.phases}"
    assert history.canary_weights == [0, 10, 20, 30, 40, 50, 0]
    _assert_route_invariants(history)
    _assert_split_matches(history)
    # hey's load (started by the pre-rollout webhook) ran through every weight from 20 to 50.
    loaded = [w for w in history.windows if w.canary_weight >= 20]
    assert all(w.requests >= LOADED_WINDOW for w in loaded), [(w.canary_weight, w.requests) for w in loaded]
    primary = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, "good-primary")
    assert primary is not None
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    codes = release.sandbox.dataplane.stats(NAMESPACE, "good-canary").codes
    assert codes.keys() <= {200, 503}, codes
    _assert_canary_served_only_while_ready(release, history)


async def test_error_rate_above_the_threshold_rolls_back(released: tuple[Release, RouteObserver]) -> None:
    release, observer = released
    history = observer.histories["errors"]
    assert history.phase == "Failed", f"phases {history.phases}"
    _assert_route_invariants(history)
    _assert_split_matches(history)
    _assert_rolled_back(release, history)
    assert release.sandbox.dataplane.stats(NAMESPACE, "errors-canary").codes.get(500, 0) > 0
    _assert_canary_served_only_while_ready(release, history)


async def test_p99_latency_above_the_threshold_rolls_back(released: tuple[Release, RouteObserver]) -> None:
    release, observer = released
    history = observer.histories["slow"]
    assert history.phase == "Failed", f"phases {history.phases}"
    _assert_route_invariants(history)
    _assert_rolled_back(release, history)
    assert release.sandbox.dataplane.stats(NAMESPACE, "slow-canary").quantile(0.99) > P99_LIMIT_MS


async def test_prometheus_saw_what_the_gateway_counted(released: tuple[Release, RouteObserver]) -> None:
    release, _ = released
    # After promotion the canary gets no traffic, so its counter is final and Prometheus's last scrape has it.
    counted = release.sandbox.dataplane.stats(NAMESPACE, "good-canary").requests
    query = f'sum(envoy_cluster_upstream_rq{{envoy_cluster_name="{NAMESPACE}_good-canary_9898"}})'
    scraped = await release.prometheus.wait_for_value(query)
    for _ in range(40):  # the next scrape, within a couple of seconds, carries the final count
        if scraped == counted:
            break
        await asyncio.sleep(0.25)
        scraped = await release.prometheus.wait_for_value(query)
    assert scraped == counted


def _assert_canary_served_only_while_ready(release: Release, history: History) -> None:
    assert history.unready_picks == 0, (
        f"{history.name}: {history.unready_picks} requests were routed to the canary while no canary pod was ready"
    )
    # The canary is scaled to zero right after the final switch to the primary: a request routed to it just before
    # (in flight at the switch, so counted after it) may find no pod left and get a 503. No other may.
    after = history.windows[-1]
    codes = release.sandbox.dataplane.stats(NAMESPACE, f"{history.name}-canary").codes
    assert after.canary_weight == 0 and codes.get(503, 0) <= after.canary_requests <= 4, (codes, after)


def _assert_rolled_back(release: Release, history: History) -> None:
    assert history.canary_weights[-1] == 0
    assert max(history.canary_weights) < 50, f"{history.name} reached maxWeight: {history.canary_weights}"
    after = history.windows[-1]
    # Only requests already in flight at the switch (at most one per hey worker) may still reach the canary.
    assert after.canary_weight == 0 and after.canary_requests <= 4, after
    failed = history.statuses[-1]
    assert failed["lastPromotedSpec"] != failed["lastAppliedSpec"]
    primary = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, f"{history.name}-primary")
    target = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, history.name)
    assert primary is not None and target is not None
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE
    assert target["spec"]["replicas"] == 0
