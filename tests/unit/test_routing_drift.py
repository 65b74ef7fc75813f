"""The weights a Canary's persisted status asks for, and drift of a live route from them."""

from __future__ import annotations

from typing import Any

import pytest

from flaggerpy.routing.build import ALL_PRIMARY, RouteWeights, desired_route
from flaggerpy.routing.drift import intended_weights, route_drifted


def canary(analysis: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
        "spec": {
            "targetRef": {"name": "podinfo"},
            "service": {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "gateway"}]},
            "analysis": analysis or {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
        },
        "status": status,
    }


BLUE_GREEN_MIRROR = {"interval": "1m", "iterations": 5, "mirror": True}


@pytest.mark.parametrize(
    ("analysis", "status", "weights"),
    [
        (None, {}, ALL_PRIMARY),
        (None, {"phase": "Progressing", "canaryWeight": 30}, RouteWeights(70, 30)),
        (None, {"phase": "Promoting", "canaryWeight": 50}, RouteWeights(50, 50)),
        (None, {"phase": "Progressing", "canaryWeight": 130}, ALL_PRIMARY),
        (BLUE_GREEN_MIRROR, {"phase": "Progressing", "canaryWeight": 0, "iterations": 0}, ALL_PRIMARY),
        (BLUE_GREEN_MIRROR, {"phase": "Progressing", "canaryWeight": 0, "iterations": 2}, RouteWeights(100, 0, True)),
        (BLUE_GREEN_MIRROR, {"phase": "WaitingPromotion", "iterations": 5}, RouteWeights(100, 0, True)),
        (BLUE_GREEN_MIRROR, {"phase": "Promoting", "canaryWeight": 100, "iterations": 5}, RouteWeights(0, 100)),
        (BLUE_GREEN_MIRROR, {"phase": "Failed", "canaryWeight": 0, "iterations": 3}, ALL_PRIMARY),
        (
            {"interval": "1m", "stepWeight": 10, "mirror": True, "mirrorWeight": 20},
            {"phase": "Progressing", "canaryWeight": 20},
            RouteWeights(80, 20, True),
        ),
    ],
)
def test_intended_weights_follow_the_persisted_step(
    analysis: dict[str, Any] | None, status: dict[str, Any], weights: RouteWeights
) -> None:
    assert intended_weights(canary(analysis, **status)) == weights


def test_a_hand_edit_of_weights_or_labels_is_drift_but_foreign_labels_are_not() -> None:
    doc = canary(phase="Progressing", canaryWeight=20)
    live = desired_route(doc, RouteWeights(80, 20))
    assert not route_drifted(doc, live)
    live["metadata"]["labels"] = {"team": "web"}
    live["spec"]["rules"][0]["backendRefs"][0]["group"] = ""
    assert not route_drifted(doc, live)
    live["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
    assert route_drifted(doc, live)
    fixed = desired_route(doc, RouteWeights(80, 20))
    del fixed["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"]
    assert route_drifted(doc, fixed)
