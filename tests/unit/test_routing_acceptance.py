"""Route acceptance from ``status.parents``: every parent, Accepted=True, at the current generation."""

from __future__ import annotations

from typing import Any

from flaggerpy.routing.acceptance import route_acceptance


def route(
    parents: list[dict[str, Any]], generation: int = 3, refs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": generation},
        "spec": {"parentRefs": refs or [{"name": "public-gateway", "namespace": "istio"}]},
        "status": {"parents": parents},
    }


def parent(status: str = "True", generation: int = 3, name: str = "public-gateway", **extra: Any) -> dict[str, Any]:
    return {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "istio", "name": name},
        "controllerName": "example.com/gateway",
        "conditions": [
            {"type": "Accepted", "status": status, "observedGeneration": generation, "reason": "Accepted", **extra}
        ],
    }


def test_accepted_at_the_current_generation() -> None:
    assert route_acceptance(route([parent()])) == (True, "")


def test_no_status_yet_names_gateway_and_route() -> None:
    ok, reason = route_acceptance(route([]))
    assert not ok
    assert reason == "waiting for Gateway istio/public-gateway to accept HTTPRoute test/podinfo"


def test_stale_generation_is_not_accepted() -> None:
    ok, reason = route_acceptance(route([parent(generation=2)]))
    assert not ok and "generation 3, seen 2" in reason


def test_rejection_carries_the_gateways_reason() -> None:
    ok, reason = route_acceptance(route([parent("False", reason="NotAllowedByListeners", message="no listener")]))
    assert not ok
    assert (
        reason
        == "Gateway istio/public-gateway did not accept HTTPRoute test/podinfo: NotAllowedByListeners: no listener"
    )


def test_every_parent_must_accept() -> None:
    refs = [{"name": "public-gateway", "namespace": "istio"}, {"name": "internal", "namespace": "istio"}]
    ok, reason = route_acceptance(route([parent()], refs=refs))
    assert not ok and "Gateway istio/internal" in reason
    assert route_acceptance(route([parent(), parent(name="internal")], refs=refs)) == (True, "")


def test_parent_namespace_defaults_to_the_routes() -> None:
    refs = [{"name": "gw"}]
    status = parent(name="gw")
    status["parentRef"]["namespace"] = "test"
    assert route_acceptance(route([status], refs=refs)) == (True, "")
