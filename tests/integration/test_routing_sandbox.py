"""The router against the sandbox API server: routes are validated (schema + CEL), defaulted and pruned by the
server exactly as a real cluster would, and the controller talks to it over HTTP through a kubeconfig."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from flaggerpy.apis.errors import SpecError
from flaggerpy.kube.api import KubeClient
from flaggerpy.routing import GatewayAPIRouter, RouteNotOwned, Routers, intended_weights, route_drifted
from flaggerpy.routing.build import ALL_PRIMARY, RouteFeatures, RouteWeights
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import GATEWAY_CRDS, Cluster
from tests.manifests import canary
from tests.routes import Remembering, weights_of

pytestmark = pytest.mark.skipif(not GATEWAY_CRDS.is_dir(), reason=f"Gateway API CRDs not found at {GATEWAY_CRDS}")
GW = "gateway.networking.k8s.io"
UID = "5f0e3c1a-3333-4e4e-9c9c-0123456789ab"


def make(
    analysis: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **service: Any
) -> dict[str, Any]:
    doc = canary(analysis=analysis)
    doc["metadata"]["uid"] = UID
    doc["spec"]["service"].update(service)
    doc["status"] = status or {}
    return doc


def writes(sb: Sandbox, plural: str = "httproutes") -> int:
    return sum(sb.counters.get(verb, f"{plural}.{GW}") for verb in ("create", "update", "patch"))


def rule_weights(route: dict[str, Any], index: int = -1) -> dict[str, int]:
    return {b["name"]: b.get("weight", 1) for b in route["spec"]["rules"][index]["backendRefs"]}


@pytest.fixture
def router(kube: KubeClient) -> Remembering:
    return Remembering(GatewayAPIRouter(kube))


async def test_created_all_primary_then_no_write_while_nothing_differs(
    sandbox: Sandbox, cluster: Cluster, router: Remembering
) -> None:
    doc = make()
    await router.reconcile(doc, intended_weights(doc))
    route = cluster.get(GW, "httproutes", "podinfo")
    assert route is not None
    assert rule_weights(route) == {"podinfo-primary": 100, "podinfo-canary": 0}
    # The server filled its defaults (parentRef group/kind, ...): the router must still see "no difference".
    assert route["spec"]["parentRefs"][0]["kind"] == "Gateway"
    before = writes(sandbox)
    for _ in range(3):
        await router.reconcile(doc, intended_weights(doc))
        await router.reconcile(doc, RouteWeights(100, 0))
    assert writes(sandbox) == before
    assert not route_drifted(doc, route)


async def test_weights_move_and_the_gateway_accepts(
    sandbox: Sandbox, cluster: Cluster, router: Remembering
) -> None:
    doc = make()
    await router.reconcile(doc, intended_weights(doc))
    await router.reconcile(doc, RouteWeights(70, 30))
    assert weights_of(cluster.get(GW, "httproutes", "podinfo"), doc) == (70, 30, False)

    # The sandbox's Gateway controller reports status asynchronously, as a real one does.
    answer = await router.is_accepted(doc)
    for _ in range(500):
        if answer[0]:
            break
        await asyncio.sleep(0.02)
        answer = await router.is_accepted(doc)
    assert answer == (True, "")
    await router.reconcile(doc, RouteWeights(50, 50))
    ok, reason = await router.is_accepted(doc)
    assert ok or "to accept HTTPRoute test/podinfo" in reason, "a new generation waits for the Gateway again"


@pytest.mark.parametrize(
    ("analysis", "status", "service", "weights"),
    [
        pytest.param(
            {
                "interval": "1s",
                "iterations": 3,
                "match": [
                    {"headers": {"x-canary": {"exact": "insider"}}},
                    {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
                ],
            },
            {"phase": "Progressing", "canaryWeight": 100},
            {"match": [{"uri": {"prefix": "/api"}}]},
            (0, 100, False),
            id="ab-testing",
        ),
        pytest.param(
            {"interval": "1s", "iterations": 3, "mirror": True, "mirrorWeight": 50},
            {"phase": "Progressing", "canaryWeight": 0, "iterations": 1},
            {},
            (100, 0, True),
            id="blue-green-mirror",
        ),
        pytest.param(
            {
                "interval": "1s",
                "stepWeight": 10,
                "maxWeight": 50,
                "sessionAffinity": {
                    "cookieName": "flagger-cookie",
                    "primaryCookieName": "flagger-primary",
                    "maxAge": 60,
                },
            },
            {"phase": "Progressing", "canaryWeight": 20, "lastAppliedSpec": "abc"},
            {"headers": {"response": {"set": {"x-served-by": "gateway"}}}},
            (80, 20, False),
            id="session-affinity",
        ),
        pytest.param(
            {"interval": "1s", "stepWeight": 10, "maxWeight": 50},
            {"phase": "Progressing", "canaryWeight": 10},
            {
                "timeout": "30s",
                "backendTimeout": "10s",
                "match": [{"uri": {"prefix": "/api"}}],
                "rewrite": {"uri": "/", "type": "ReplacePrefixMatch"},
                "headers": {"request": {"set": {"x-a": "1"}, "remove": ["x-debug"]}},
                "corsPolicy": {"allowOrigin": ["https://example.com"], "allowMethods": ["GET"], "maxAge": "1h"},
            },
            (90, 10, False),
            id="timeouts-headers-rewrite-cors",
        ),
    ],
)
async def test_every_strategy_is_accepted_by_the_crd_and_reads_back(
    sandbox: Sandbox,
    cluster: Cluster,
    router: Remembering,
    analysis: dict[str, Any],
    status: dict[str, Any],
    service: dict[str, Any],
    weights: tuple[int, int, bool],
) -> None:
    doc = make(analysis, status, **service)
    await router.reconcile(make(analysis, {}, **service), ALL_PRIMARY)
    await router.reconcile(doc, intended_weights(doc))
    assert weights_of(cluster.get(GW, "httproutes", "podinfo"), doc) == weights
    before = writes(sandbox)
    await router.reconcile(doc, intended_weights(doc))
    assert writes(sandbox) == before, "a defaulted, pruned live route compares equal to the desired one"
    route = cluster.get(GW, "httproutes", "podinfo")
    assert route is not None and not route_drifted(doc, route)


async def test_grpc_route(sandbox: Sandbox, cluster: Cluster, router: Remembering) -> None:
    doc = make(status={"phase": "Progressing", "canaryWeight": 40}, appProtocol="grpc")
    await router.reconcile(doc, intended_weights(doc))
    route = cluster.get(GW, "grpcroutes", "podinfo")
    assert route is not None
    assert rule_weights(route) == {"podinfo-primary": 100, "podinfo-canary": 0}, "created all primary"
    await router.reconcile(doc, intended_weights(doc))
    route = cluster.get(GW, "grpcroutes", "podinfo")
    assert route is not None
    assert rule_weights(route) == {"podinfo-primary": 60, "podinfo-canary": 40}
    before = writes(sandbox, "grpcroutes")
    await router.reconcile(doc, intended_weights(doc))
    assert writes(sandbox, "grpcroutes") == before


async def test_hand_edited_weights_are_repaired_and_foreign_metadata_kept(
    sandbox: Sandbox, cluster: Cluster, router: Remembering
) -> None:
    doc = make(status={"phase": "Progressing", "canaryWeight": 30})
    await router.reconcile(make(), ALL_PRIMARY)
    await router.reconcile(doc, intended_weights(doc))
    edited = copy.deepcopy(cluster.get(GW, "httproutes", "podinfo"))
    assert edited is not None
    edited["spec"]["rules"][0]["backendRefs"][0]["weight"] = 0
    edited["spec"]["rules"][0]["backendRefs"][1]["weight"] = 100
    edited["metadata"].setdefault("labels", {})["team"] = "web"
    edited["metadata"]["annotations"]["example.com/note"] = "hand edit"
    await cluster.update(GW, "httproutes", edited)
    live = cluster.get(GW, "httproutes", "podinfo")
    assert live is not None and route_drifted(doc, live)
    await router.reconcile(doc, intended_weights(doc))
    live = cluster.get(GW, "httproutes", "podinfo")
    assert live is not None
    assert rule_weights(live) == {"podinfo-primary": 70, "podinfo-canary": 30}
    assert live["metadata"]["labels"]["team"] == "web"
    assert live["metadata"]["annotations"]["example.com/note"] == "hand edit"


async def test_a_route_the_canary_does_not_own_is_left_alone(
    sandbox: Sandbox, cluster: Cluster, router: Remembering
) -> None:
    foreign = {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "parentRefs": [{"name": "public-gateway", "namespace": "gateway"}],
            "rules": [{"backendRefs": [{"name": "legacy", "port": 80}]}],
        },
    }
    await cluster.create(GW, "httproutes", foreign)
    before = writes(sandbox)
    with pytest.raises(RouteNotOwned, match="HTTPRoute test/podinfo exists and is not owned"):
        await router.reconcile(make(), ALL_PRIMARY)
    assert writes(sandbox) == before
    live = cluster.get(GW, "httproutes", "podinfo")
    assert live is not None and live["spec"]["rules"][0]["backendRefs"][0]["name"] == "legacy"


async def test_finalize_reverts_to_the_apex_service(cluster: Cluster, router: Remembering) -> None:
    doc = make(status={"phase": "Progressing", "canaryWeight": 50})
    await router.reconcile(doc, intended_weights(doc))
    await router.finalize(doc)
    live = cluster.get(GW, "httproutes", "podinfo")
    assert live is not None
    assert rule_weights(live) == {"podinfo": 100}
    assert not live["metadata"].get("ownerReferences")
    # The Canary comes back (new uid): it adopts the route it released.
    again = make()
    again["metadata"]["uid"] = "7e2d4b6a-4444-4f4f-8d8d-0123456789ab"
    await router.reconcile(again, intended_weights(again))
    live = cluster.get(GW, "httproutes", "podinfo")
    assert live is not None
    assert [r["uid"] for r in live["metadata"]["ownerReferences"]] == [again["metadata"]["uid"]]
    assert rule_weights(live) == {"podinfo-primary": 100, "podinfo-canary": 0}


async def test_features_are_detected_from_the_served_crd(kube: KubeClient) -> None:
    router = Routers(kube).for_provider("gatewayapi")
    assert isinstance(router, GatewayAPIRouter)
    assert await router._features("HTTPRoute") == RouteFeatures(cors=True, retry=False)


async def test_v1beta1_provider(sandbox: Sandbox, cluster: Cluster, kube: KubeClient) -> None:
    router = Remembering(Routers(kube).for_provider("gatewayapi:v1beta1"))
    doc = make()
    await router.reconcile(doc, intended_weights(doc))
    await router.reconcile(doc, RouteWeights(50, 50))
    assert weights_of(cluster.get(GW, "httproutes", "podinfo"), doc) == (50, 50, False)
    before = writes(sandbox)
    await router.reconcile(doc, RouteWeights(50, 50))
    assert writes(sandbox) == before


async def test_invalid_canary_is_a_field_error_not_a_server_422(sandbox: Sandbox, router: Remembering) -> None:
    with pytest.raises(SpecError, match=r"spec\.service\.hosts\[0\]"):
        await router.reconcile(make(hosts=["Not A Host"]), ALL_PRIMARY)
    assert writes(sandbox) == 0
