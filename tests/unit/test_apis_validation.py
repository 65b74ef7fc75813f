"""Every validation rule of a Canary, with the message a user sees (``<JSON path>: <problem>``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flaggerpy.apis.errors import FieldError, SpecError
from flaggerpy.apis.flagger import AlertProvider, Canary, MetricTemplate
from tests.unit.manifests import canary_object


def good() -> dict[str, Any]:
    """A minimal valid Gateway API canary."""
    return canary_object(
        {
            "interval": "1m",
            "threshold": 5,
            "maxWeight": 50,
            "stepWeight": 10,
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
        }
    )


def problems(obj: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        Canary.from_dict(obj)
    return [str(e) for e in info.value.errors]


def with_analysis(**fields: Any) -> dict[str, Any]:
    obj = good()
    for key, value in fields.items():
        if value is None:
            obj["spec"]["analysis"].pop(key, None)
        else:
            obj["spec"]["analysis"][key] = value
    return obj


def test_minimal_canary_is_valid() -> None:
    canary = Canary.from_dict(good())
    assert canary.metadata.name == "podinfo"
    assert canary.spec.analysis is not None
    assert canary.spec.analysis.step_weight == 10


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stepWeight": 0}, "spec.analysis.stepWeight: must be > 0"),
        ({"stepWeight": -5}, "spec.analysis.stepWeight: must be > 0"),
        ({"stepWeight": 101, "maxWeight": None}, "spec.analysis.stepWeight: must be between 1 and 100"),
        ({"maxWeight": 0}, "spec.analysis.maxWeight: must be between 1 and 100"),
        ({"maxWeight": 101}, "spec.analysis.maxWeight: must be between 1 and 100"),
        ({"maxWeight": 5}, "spec.analysis.maxWeight: must be >= stepWeight (10)"),
        (
            {"stepWeight": None, "stepWeights": [10, 30, 30]},
            "spec.analysis.stepWeights[2]: must be greater than the previous step (30)",
        ),
        (
            {"stepWeight": None, "stepWeights": [10, 30, 20]},
            "spec.analysis.stepWeights[2]: must be greater than the previous step (30)",
        ),
        ({"stepWeight": None, "stepWeights": [0, 10]}, "spec.analysis.stepWeights[0]: must be between 1 and 100"),
        ({"stepWeight": None, "stepWeights": [10, 60]}, "spec.analysis.stepWeights[1]: exceeds maxWeight (50)"),
        ({"stepWeight": None, "stepWeights": []}, "spec.analysis.stepWeights: must not be empty"),
        (
            {"stepWeight": None},
            "spec.analysis.stepWeight: required for a canary release "
            "(or set stepWeights; or iterations for A/B and blue/green)",
        ),
        ({"stepWeightPromotion": 0}, "spec.analysis.stepWeightPromotion: must be > 0"),
        ({"interval": "1x"}, 'spec.analysis.interval: "1x" is not a duration'),
        ({"interval": 60}, "spec.analysis.interval: must be a string, not 60"),
        ({"interval": "0s"}, "spec.analysis.interval: must be longer than 0s"),
        ({"threshold": -1}, "spec.analysis.threshold: must be >= 0"),
        ({"threshold": "five"}, 'spec.analysis.threshold: must be an integer, not "five"'),
        ({"iterations": -1}, "spec.analysis.iterations: must be >= 0"),
        ({"primaryReadyThreshold": 120}, "spec.analysis.primaryReadyThreshold: must be <= 100"),
        ({"canaryReadyThreshold": -1}, "spec.analysis.canaryReadyThreshold: must be >= 0"),
        ({"mirrorWeight": 150}, "spec.analysis.mirrorWeight: must be <= 100"),
    ],
)
def test_analysis_rules(fields: dict[str, Any], message: str) -> None:
    assert message in problems(with_analysis(**fields))


def test_ab_testing_needs_iterations() -> None:
    obj = with_analysis(match=[{"headers": {"x-canary": {"exact": "insider"}}}], stepWeight=None, maxWeight=None)
    assert problems(obj) == ["spec.analysis.iterations: required for A/B testing (analysis.match is set)"]


def warnings(obj: dict[str, Any]) -> list[str]:
    return [str(w) for w in Canary.from_dict(obj).spec_warnings()]


def test_flagger_precedence_is_kept_and_reported_as_warnings() -> None:
    """Manifests Flagger accepts must apply unchanged; what Flagger ignores is reported, not refused."""
    assert warnings(with_analysis(stepWeights=[10, 20])) == [
        "spec.analysis.stepWeight: ignored: stepWeights is set and takes precedence"
    ]
    blue_green = Canary.from_dict(with_analysis(iterations=10))
    assert blue_green.strategy == "blue-green"
    assert [str(w) for w in blue_green.spec_warnings()] == [
        "spec.analysis.stepWeight: ignored: iterations is set, so the release is A/B testing or blue/green"
    ]


def test_mirror_without_iterations_or_mirror_weight_is_ignored() -> None:
    assert warnings(with_analysis(mirror=True)) == [
        "spec.analysis.mirror: ignored: mirroring needs iterations (blue/green) or mirrorWeight (canary)"
    ]
    assert warnings(with_analysis(mirror=True, mirrorWeight=20)) == []
    assert warnings(with_analysis(mirror=True, iterations=5, stepWeight=None, maxWeight=None)) == []


def test_mirror_weight_without_mirror_is_ignored() -> None:
    assert warnings(with_analysis(mirrorWeight=20)) == ["spec.analysis.mirrorWeight: ignored: mirror is not true"]


def test_ab_testing_does_not_mirror() -> None:
    obj = with_analysis(
        stepWeight=None,
        maxWeight=None,
        iterations=5,
        mirror=True,
        match=[{"headers": {"x-canary": {"exact": "1"}}}],
    )
    assert warnings(obj) == ["spec.analysis.mirror: ignored: A/B testing (analysis.match) does not mirror"]


def test_session_affinity_rules() -> None:
    assert problems(with_analysis(sessionAffinity={"maxAge": 60})) == [
        "spec.analysis.sessionAffinity.cookieName: required"
    ]
    same = {"cookieName": "c", "primaryCookieName": "c"}
    assert problems(with_analysis(sessionAffinity=same)) == [
        "spec.analysis.sessionAffinity.primaryCookieName: must differ from cookieName"
    ]
    blue_green = with_analysis(sessionAffinity={"cookieName": "c"}, iterations=3, stepWeight=None, maxWeight=None)
    assert warnings(blue_green) == [
        "spec.analysis.sessionAffinity: ignored: it works only with a weighted canary release (stepWeight/stepWeights)"
    ]
    assert problems(with_analysis(sessionAffinity={"cookieName": "c", "sameSite": "Sometimes"})) == [
        "spec.analysis.sessionAffinity.sameSite: \"Sometimes\" is not one of 'Strict', 'Lax' or 'None'"
    ]


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            {"name": "request-success-rate", "thresholdRange": {}},
            "spec.analysis.metrics[0].thresholdRange: needs min or max",
        ),
        (
            {"name": "error-rate", "thresholdRange": {"max": 1}},
            "spec.analysis.metrics[0]: needs templateRef or a builtin name (request-success-rate, request-duration)",
        ),
        (
            {"name": "request-duration", "thresholdRange": {"min": 5, "max": 1}},
            "spec.analysis.metrics[0].thresholdRange: min (5) must be <= max (1)",
        ),
        (
            {"name": "request-duration", "interval": "5 minutes", "thresholdRange": {"max": 1}},
            'spec.analysis.metrics[0].interval: "5 minutes" is not a duration',
        ),
        (
            {"name": "request-duration", "thresholdRange": {"max": 1}, "onNoData": "ignore"},
            "spec.analysis.metrics[0].onNoData: \"ignore\" is not one of 'fail' or 'skip'",
        ),
        ({"thresholdRange": {"max": 1}}, "spec.analysis.metrics[0].name: required"),
        (
            {"name": "request-duration", "thresholdRange": {"max": "high"}},
            'spec.analysis.metrics[0].thresholdRange.max: must be a number, not "high"',
        ),
    ],
)
def test_metric_rules(metric: dict[str, Any], message: str) -> None:
    assert message in problems(with_analysis(metrics=[metric]))


def test_repeated_metric_and_webhook_names() -> None:
    metric = {"name": "request-success-rate", "thresholdRange": {"min": 99}}
    hook = {"name": "load", "url": "http://lt/"}
    found = problems(with_analysis(metrics=[metric, metric], webhooks=[hook, hook]))
    assert found == [
        'spec.analysis.metrics[1].name: "request-success-rate" repeats metrics[0]',
        'spec.analysis.webhooks[1].name: "load" repeats webhooks[0]',
    ]


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"name": "h"}, "spec.analysis.webhooks[0].url: required"),
        ({"name": "h", "url": "http://x", "type": "pre"}, 'spec.analysis.webhooks[0].type: "pre" is not one of'),
        (
            {"name": "h", "url": "http://x", "timeout": "soon"},
            'spec.analysis.webhooks[0].timeout: "soon" is not a duration',
        ),
        ({"name": "h", "url": "http://x", "retries": -1}, "spec.analysis.webhooks[0].retries: must be >= 0"),
        (
            {"name": "h", "url": "http://x", "metadata": {"n": 1}},
            "spec.analysis.webhooks[0].metadata.n: must be a string, not 1",
        ),
    ],
)
def test_webhook_rules(hook: dict[str, Any], message: str) -> None:
    assert any(p.startswith(message) for p in problems(with_analysis(webhooks=[hook])))


def test_alert_rules() -> None:
    alert = {"name": "a", "severity": "critical", "providerRef": {"name": "slack"}}
    assert any(
        p.startswith('spec.analysis.alerts[0].severity: "critical" is not one of')
        for p in problems(with_analysis(alerts=[alert]))
    )
    assert "spec.analysis.alerts[0].providerRef: required" in problems(with_analysis(alerts=[{"name": "a"}]))


def test_provider_must_be_gateway_api() -> None:
    obj = good()
    obj["spec"]["provider"] = "nginx"
    assert problems(obj) == [
        'spec.provider: "nginx" is not a Gateway API provider (gatewayapi, gatewayapi:v1, gatewayapi:v1beta1)'
    ]
    for provider in ("gatewayapi", "gatewayapi:v1", "gatewayapi:v1beta1"):
        obj["spec"]["provider"] = provider
        Canary.from_dict(obj)
    del obj["spec"]["provider"]
    Canary.from_dict(obj)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("targetRef", "kind"), "StatefulSet", "spec.targetRef.kind: must be Deployment or DaemonSet"),
        (("targetRef", "name"), "", "spec.targetRef.name: must not be empty"),
        (("service", "port"), None, "spec.service.port: required"),
        (("service", "port"), 70000, "spec.service.port: must be <= 65535"),
        (("service", "port"), "http", 'spec.service.port: must be an integer, not "http"'),
        (("service", "targetPort"), 1.5, "spec.service.targetPort: must be a port number or a port name"),
        (("service", "timeout"), "30", 'spec.service.timeout: "30" is not a duration'),
        (
            ("service", "gatewayRefs"),
            None,
            "spec.service.gatewayRefs: required: name at least one Gateway for the HTTPRoute",
        ),
        (("service", "gatewayRefs"), [{"namespace": "x"}], "spec.service.gatewayRefs[0].name: required"),
        (("service", "gatewayRefs"), [{"name": "g", "port": 0}], "spec.service.gatewayRefs[0].port: must be >= 1"),
        (
            ("service", "gatewayRefs"),
            [{"name": "g", "namespace": "Bad_NS"}],
            'spec.service.gatewayRefs[0].namespace: "Bad_NS" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
        ),
        (("progressDeadlineSeconds",), 0, "spec.progressDeadlineSeconds: must be >= 1"),
        (("analysis",), None, "spec.analysis: required"),
        (("service",), None, "spec.service: required"),
        (("targetRef",), "podinfo", 'spec.targetRef: must be an object, not "podinfo"'),
        (("suspend",), "maybe", 'spec.suspend: must be true or false, not "maybe"'),
    ],
)
def test_spec_rules(path: tuple[str, ...], value: Any, message: str) -> None:
    obj = good()
    node = obj["spec"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    assert message in problems(obj)


@pytest.mark.parametrize(
    ("match", "message"),
    [
        (
            {"headers": {"x-user": {"prefix": "beta-"}}},
            "spec.analysis.match[0].headers[x-user].prefix: Gateway API matches headers and query params only by "
            "exact or regex",
        ),
        (
            {"queryParams": {"v": {"suffix": "2"}}},
            "spec.analysis.match[0].queryParams.v.suffix: Gateway API matches headers and query params only by "
            "exact or regex",
        ),
        (
            {"uri": {"suffix": ".png"}},
            "spec.analysis.match[0].uri.suffix: Gateway API matches paths by exact, prefix or regex",
        ),
        ({"scheme": {"exact": "https"}}, "spec.analysis.match[0].scheme: not supported by Gateway API routing"),
        (
            {"withoutHeaders": {"x-beta": {"exact": "off"}}},
            "spec.analysis.match[0].withoutHeaders: not supported by Gateway API routing",
        ),
        ({"method": {"prefix": "P"}}, "spec.analysis.match[0].method: Gateway API matches the method only exactly"),
        (
            {"headers": {"x": {"exact": "a", "regex": "b"}}},
            "spec.analysis.match[0].headers.x: set only one of exact, prefix, suffix, regex (got exact, regex)",
        ),
    ],
)
def test_match_rules(match: dict[str, Any], message: str) -> None:
    obj = with_analysis(match=[match], iterations=10, stepWeight=None, maxWeight=None)
    assert problems(obj) == [message]


def test_rewrite_prefix_needs_prefix_match() -> None:
    obj = good()
    obj["spec"]["service"]["rewrite"] = {"uri": "/", "type": "ReplacePrefixMatch"}
    assert problems(obj) == ["spec.service.rewrite.type: ReplacePrefixMatch needs a service.match with uri.prefix"]
    obj["spec"]["service"]["match"] = [{"uri": {"prefix": "/api"}}]
    Canary.from_dict(obj)


def test_collects_every_problem_at_once() -> None:
    obj = with_analysis(stepWeight=-1, maxWeight=500, interval="soon")
    obj["spec"]["provider"] = "istio"
    obj["spec"]["targetRef"]["kind"] = "StatefulSet"
    found = problems(obj)
    assert 'spec.analysis.interval: "soon" is not a duration' in found
    assert "spec.targetRef.kind: must be Deployment or DaemonSet" in found
    assert "spec.analysis.stepWeight: must be > 0" in found
    assert "spec.analysis.maxWeight: must be between 1 and 100" in found
    assert any(p.startswith("spec.provider:") for p in found)


def test_unknown_fields_are_ignored() -> None:
    obj = good()
    obj["spec"]["futureField"] = {"anything": True}
    obj["spec"]["analysis"]["newKnob"] = 3
    obj["spec"]["service"]["gatewayRefs"][0]["extra"] = "x"
    Canary.from_dict(obj)


def test_spec_error_reads_well() -> None:
    with pytest.raises(SpecError) as info:
        Canary.from_dict(with_analysis(stepWeight=0))
    assert str(info.value) == "invalid Canary: spec.analysis.stepWeight: must be > 0"
    assert info.value.errors == [FieldError("spec.analysis.stepWeight", "must be > 0")]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("obj", [None, [], "canary", 3, {"spec": None}, {"spec": []}, {}])
def test_not_an_object(obj: Any) -> None:
    with pytest.raises(SpecError):
        Canary.from_dict(obj)


def test_metric_template_rules() -> None:
    template = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "t", "namespace": "n"},
        "spec": {"provider": {"type": "prometheus", "address": "http://prom:9090"}, "query": "up"},
    }
    assert MetricTemplate.from_dict(template).spec.provider.address == "http://prom:9090"
    broken = copy.deepcopy(template)
    del broken["spec"]["query"]
    broken["spec"]["provider"] = {"address": "x", "insecureSkipVerify": "maybe"}
    with pytest.raises(SpecError) as info:
        MetricTemplate.from_dict(broken)
    assert sorted(str(e) for e in info.value.errors) == [
        'spec.provider.insecureSkipVerify: must be true or false, not "maybe"',
        "spec.provider.type: required",
        "spec.query: required",
    ]


def test_alert_provider_rules() -> None:
    provider = {"kind": "AlertProvider", "metadata": {"name": "a"}, "spec": {"type": "slack", "channel": "c"}}
    with pytest.raises(SpecError) as info:
        AlertProvider.from_dict(provider)
    assert [str(e) for e in info.value.errors] == ["spec: needs address or secretRef"]
    provider["spec"]["type"] = "pager"
    with pytest.raises(SpecError) as info:
        AlertProvider.from_dict(provider)
    assert str(info.value.errors[0]).startswith('spec.type: "pager" is not one of')
    provider["spec"] = {"type": "generic", "address": "https://hooks.example.com/x"}
    assert AlertProvider.from_dict(provider).spec.type == "generic"


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            {"name": "request-duration"},
            "spec.analysis.metrics[0].thresholdRange: not set: the check fails only when the query fails",
        ),
        (
            {"name": "x", "query": "up", "templateRef": {"name": "t"}, "thresholdRange": {"min": 1}},
            "spec.analysis.metrics[0].query: ignored: templateRef is set and takes precedence",
        ),
    ],
)
def test_metric_warnings(metric: dict[str, Any], message: str) -> None:
    assert warnings(with_analysis(metrics=[metric])) == [message]
