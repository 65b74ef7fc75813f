"""Whatever a user puts in a Canary, parsing either succeeds or raises SpecError naming fields; nothing crashes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import AlertProvider, Canary, MetricTemplate

KEYS = st.sampled_from(
    [
        "analysis",
        "canaryAnalysis",
        "service",
        "targetRef",
        "provider",
        "port",
        "targetPort",
        "gatewayRefs",
        "match",
        "headers",
        "stepWeight",
        "stepWeights",
        "maxWeight",
        "iterations",
        "mirror",
        "mirrorWeight",
        "interval",
        "metrics",
        "thresholdRange",
        "min",
        "max",
        "templateRef",
        "webhooks",
        "sessionAffinity",
        "cookieName",
        "name",
        "exact",
        "prefix",
        "regex",
        "timeout",
        "x-canary",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["1m", "30s", "1x", "gatewayapi", "Deployment", "", "-1"])
)
JUNK = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=5),
    max_leaves=25,
)

BASE: dict[str, Any] = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "test"},
    "spec": {
        "targetRef": {"kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898, "gatewayRefs": [{"name": "gw"}]},
        "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
    },
}


def check(obj: Any, parse: Any) -> None:
    try:
        parsed = parse(obj)
    except SpecError as exc:
        assert exc.errors, "a SpecError must name at least one problem"
        for error in exc.errors:
            assert error.field and error.problem
        return
    if isinstance(parsed, Canary):
        # A canary that parses must also work for the engine's helpers and survive a round trip.
        assert parsed.interval_seconds > 0
        assert all(0 < w <= parsed.max_weight for w in parsed.weight_schedule())
        assert parsed.strategy and parsed.service_names() and parsed.promotion_weights(parsed.max_weight)
        assert Canary.from_dict(parsed.to_dict()) == parsed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=JUNK)
def test_junk_spec_only_raises_spec_error(junk: Any) -> None:
    check({**BASE, "spec": junk}, Canary.from_dict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=st.sampled_from(["analysis", "service", "targetRef"]), key=KEYS, junk=JUNK)
def test_junk_in_a_valid_canary_only_raises_spec_error(section: str, key: str, junk: Any) -> None:
    obj = copy.deepcopy(BASE)
    obj["spec"][section][key] = junk
    check(obj, Canary.from_dict)


@settings(max_examples=60, deadline=None)
@given(junk=JUNK)
def test_junk_templates_and_providers_only_raise_spec_error(junk: Any) -> None:
    check({"kind": "MetricTemplate", "metadata": {"name": "t"}, "spec": junk}, MetricTemplate.from_dict)
    check({"kind": "AlertProvider", "metadata": {"name": "a"}, "spec": junk}, AlertProvider.from_dict)
    check(junk, Canary.from_dict)
