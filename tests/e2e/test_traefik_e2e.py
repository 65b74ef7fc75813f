"""The three releases of ``test_release_e2e`` with Traefik as the Gateway: a real proxy in front of real pod
listeners, the real Prometheus scraping Traefik's own metrics, and MetricTemplates on Traefik's metric names.

- ``good`` walks 10 → 50 and is promoted; ``errors`` (20% 500s from its new pods) and ``slow`` (~1 s answers)
  roll back;
- the canary's share of what Traefik forwarded, per set of weights Traefik routed with (read from its API), is
  within binomial bounds of the weight, counted both by Traefik's ``traefik_service_requests_total`` and by the
  pods' own answers;
- no canary pod answers while it is not ready, and after a rollback all traffic is on the primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.release_harness import (
    ERROR_RATE_ANNOTATION,
    LATENCY_ANNOTATION,
    Release,
    RouteObserver,
    assert_split_follows_weights,
    real_parts,
    requires_tools,
)
from tests.e2e.traefik_parts import TraefikGateway, TraefikHistory, TraefikObserver, canary_service, require_traefik
from tests.integration.conftest import wait_for
from tests.manifests import NAMESPACE, canary, deployment

pytestmark = [pytest.mark.e2e, requires_tools, pytest.mark.asyncio(loop_scope="module")]

OLD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
NAMES = ["good", "errors", "slow"]
P99_LIMIT_MS = 500
METRIC_WINDOW = "6s"
CANARY = canary_service("{{ namespace }}", "{{ target }}")
SUCCESS_QUERY = (
    f'sum(rate(traefik_service_requests_total{{service=~"{CANARY}",code!~"5.."}}[{{{{ interval }}}}])) / '
    f'sum(rate(traefik_service_requests_total{{service=~"{CANARY}"}}[{{{{ interval }}}}])) * 100'
)
LATENCY_QUERY = (
    f'histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{{service=~"{CANARY}"}}'
    f'[{{{{ interval }}}}])) by (le)) * 1000'
)
METRICS = [
    {"name": "success-rate", "interval": METRIC_WINDOW, "thresholdRange": {"min": 99}, "onNoData": "skip",
     "templateRef": {"name": "traefik-success-rate", "namespace": NAMESPACE}},
    {"name": "latency", "interval": METRIC_WINDOW, "thresholdRange": {"max": P99_LIMIT_MS}, "onNoData": "skip",
     "templateRef": {"name": "traefik-latency", "namespace": NAMESPACE}},
]
RELEASE_TIMEOUT = 120.0
MIN_WINDOW_REQUESTS = 50
# The observer places windows when Traefik's API shows new weights; a request in flight then (one per hey worker)
# is counted by Traefik and the pods when it completes, possibly in the next window.
BOUNDARY_SLACK = 4
LOADED_WINDOW = 300
FINAL_REQUESTS = 20


def _template(name: str, query: str, prometheus_url: str) -> dict[str, Any]:
    return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"provider": {"type": "prometheus", "address": prometheus_url}, "query": query}}


def _analysis(release: Release, name: str, interval: str, rps_per_worker: int, workers: int) -> dict[str, Any]:
    return {
        "interval": interval, "threshold": 2, "maxWeight": 50, "stepWeight": 10, "metrics": METRICS,
        "webhooks": [*release.load_webhooks(name, seconds=60, rps_per_worker=rps_per_worker, workers=workers),
                     *release.data_gate_webhooks()],
    }


Released = tuple[Release, RouteObserver, TraefikObserver]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def released(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Released]:
    """Run the three releases through Traefik once; the tests below examine what happened."""
    require_traefik()
    workdir: Path = tmp_path_factory.mktemp("traefik-release")
    traefik = TraefikGateway()
    async with real_parts(workdir, METRIC_WINDOW, traefik) as release:
        await release.create("flagger.app", "metrictemplates",
                             _template("traefik-success-rate", SUCCESS_QUERY, release.prometheus.url))
        await release.create("flagger.app", "metrictemplates",
                             _template("traefik-latency", LATENCY_QUERY, release.prometheus.url))
        load = {"good": ("3s", 75, 4), "errors": ("2s", 25, 2), "slow": ("2s", 25, 2)}
        for name, (interval, rps, workers) in load.items():
            await release.create("apps", "deployments", deployment(name, OLD_IMAGE))
            await release.create("flagger.app", "canaries", canary(name, _analysis(release, name, interval, rps,
                                                                                     workers)))
        routes = RouteObserver(release.sandbox, NAMES)
        routes.start()
        proxy = TraefikObserver(release.sandbox, traefik, NAMES)
        proxy.start()

        def measured_enough(name: str) -> bool:
            windows = proxy.histories[name].by_pods
            return name != "good" or bool(windows and windows[-1].end is None and
                                          sum(proxy.pod_counts(name)) - sum(windows[-1].start) >= LOADED_WINDOW)

        release.data_gate.hold_until(measured_enough)
        try:
            for name in NAMES:
                await routes.wait_phase(name, {"Initialized"}, RELEASE_TIMEOUT)
            await release.release("good", NEW_IMAGE)
            await release.release("errors", NEW_IMAGE, {ERROR_RATE_ANNOTATION: "0.2"})
            await release.release("slow", NEW_IMAGE, {LATENCY_ANNOTATION: "1s"})
            for name in NAMES:
                try:
                    await routes.wait_phase(name, {"Succeeded", "Failed"}, RELEASE_TIMEOUT)
                except TimeoutError:
                    pytest.fail(f"{name} did not finish: phases {routes.histories[name].phases}\n"
                                f"controller output:\n{release.controller.tail()}")
            # Traefik applies the final route a configuration reload later: the final requests go once it has.
            def final_weights_applied() -> bool:
                return all(proxy.histories[n].by_traefik and routes.histories[n].weights and
                           proxy.histories[n].by_traefik[-1].weights == routes.histories[n].weights[-1]
                           for n in NAMES)

            await wait_for(final_weights_applied, 15, lambda: str({
                n: (proxy.histories[n].canary_weights, routes.histories[n].canary_weights) for n in NAMES}))
            for name in NAMES:
                await release.send(name, FINAL_REQUESTS)
        finally:
            await proxy.stop()
            await routes.stop()
        yield release, routes, proxy


def _assert_traefik_followed_the_routes(routes: RouteObserver, history: TraefikHistory) -> None:
    committed = routes.histories[history.name].weights
    for window in history.by_traefik:
        assert window.weights in committed, (
            f"{history.name}: Traefik routed with {window.weights}, which no HTTPRoute version had: {committed}")
    rising = [w for w in history.canary_weights if w > 0]
    assert rising == list(range(10, 10 * len(rising) + 1, 10)), f"{history.name}: Traefik skipped steps: {rising}"


def _assert_no_unready_canary_answers(proxy: TraefikObserver, name: str) -> None:
    history = proxy.histories[name]
    # Traefik only ever had ready canary pods (or ones draining after the final switch) as servers...
    assert history.unready_servers == 0, f"{name}: {history.unready_servers} observations of an unready server"
    # ...and no request found a canary pod that was not listening yet (Traefik would have answered 502/503/504).
    assert set(history.canary_codes) <= {"200", "500"}, (name, history.canary_codes)
    # Canary pods answer while not ready only as they drain after the canary is scaled away: Flagger scales it down
    # right after the final route, and Traefik sends to them until it has applied that route and their
    # EndpointSlice change (a reload later). A pod that drains still answers: no 502 above says it did.


async def test_healthy_release_is_promoted_through_traefik(released: Released) -> None:
    release, routes, proxy = released
    history = proxy.histories["good"]
    assert routes.histories["good"].phase == "Succeeded", routes.histories["good"].phases
    assert history.canary_weights == [0, 10, 20, 30, 40, 50, 0]
    _assert_traefik_followed_the_routes(routes, history)
    assert_split_follows_weights("good", history.by_traefik, "Traefik's metrics", MIN_WINDOW_REQUESTS, BOUNDARY_SLACK)
    assert_split_follows_weights("good", history.by_pods, "the pods' answers", MIN_WINDOW_REQUESTS, BOUNDARY_SLACK)
    loaded = [w for w in history.by_pods if w.canary_weight >= 20]
    assert all(w.requests >= LOADED_WINDOW for w in loaded), [(w.canary_weight, w.requests) for w in loaded]
    _assert_no_unready_canary_answers(proxy, "good")
    primary = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, "good-primary")
    assert primary is not None and primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE


@pytest.mark.parametrize("name", ["errors", "slow"])
async def test_bad_release_rolls_back_to_the_primary_through_traefik(released: Released, name: str) -> None:
    release, routes, proxy = released
    history = proxy.histories[name]
    assert routes.histories[name].phase == "Failed", routes.histories[name].phases
    _assert_traefik_followed_the_routes(routes, history)
    assert max(history.canary_weights) < 50
    assert_split_follows_weights(name, history.by_traefik, "Traefik's metrics", MIN_WINDOW_REQUESTS, BOUNDARY_SLACK)
    _assert_no_unready_canary_answers(proxy, name)
    # After the rollback Traefik sends everything to the primary: the final requests all reached primary pods.
    for windows in (history.by_traefik, history.by_pods):
        final = windows[-1]
        assert final.canary_weight == 0 and final.canary_requests <= 4 and final.primary_requests >= 16, final
    target = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, name)
    assert target is not None and target["spec"]["replicas"] == 0
