"""Whatever junk a Canary's routing fields hold, building its route ends in a route or a SpecError naming fields."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.apis.errors import SpecError
from flaggerpy.routing.build import RouteFeatures, RouteWeights, desired_route
from flaggerpy.routing.drift import intended_weights

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
SERVICE_KEYS = [
    "port",
    "name",
    "appProtocol",
    "hosts",
    "gatewayRefs",
    "match",
    "rewrite",
    "retries",
    "headers",
    "mirror",
    "corsPolicy",
    "timeout",
    "backendTimeout",
    "apex",
    "unmanagedMetadata",
]
ANALYSIS_KEYS = ["match", "mirror", "mirrorWeight", "sessionAffinity", "interval", "iterations"]


def canary(service: dict[str, Any], analysis: dict[str, Any], status: Any) -> dict[str, Any]:
    base_service: dict[str, Any] = {"port": 80, "gatewayRefs": [{"name": "gw"}]}
    return {
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
        "spec": {"targetRef": {"name": "podinfo"}, "service": {**base_service, **service}, "analysis": analysis},
        "status": status,
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    service=st.dictionaries(st.sampled_from(SERVICE_KEYS), json_values, max_size=4),
    analysis=st.dictionaries(st.sampled_from(ANALYSIS_KEYS), json_values, max_size=3),
    status=st.dictionaries(st.sampled_from(["phase", "canaryWeight", "lastAppliedSpec"]), json_values, max_size=3)
    | json_values,
    weight=st.integers(0, 100),
    mirror=st.booleans(),
    features=st.builds(RouteFeatures, st.booleans(), st.booleans()),
)
def test_junk_becomes_a_route_or_a_spec_error(
    service: dict[str, Any],
    analysis: dict[str, Any],
    status: dict[str, Any],
    weight: int,
    mirror: bool,
    features: RouteFeatures,
) -> None:
    doc = canary(service, analysis, status)
    for weights in (RouteWeights(100 - weight, weight, mirror), intended_weights(doc)):
        try:
            route = desired_route(doc, weights, features=features)
        except SpecError as err:
            assert err.errors and all(e.field.startswith("spec.") for e in err.errors)
        else:
            assert route["spec"]["rules"]
