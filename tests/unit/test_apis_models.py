"""Realistic Flagger manifests load unchanged, round-trip, and give the engine the numbers it needs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from flaggerpy.apis.flagger import (
    AlertProvider,
    Canary,
    CanaryStatus,
    MetricSample,
    MetricTemplate,
    Strategy,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flagger"


def load(name: str, kind: str = "Canary", index: int = 0) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((FIXTURES / name).read_text()) if d["kind"] == kind]
    return docs[index]


def canary(name: str) -> Canary:
    return Canary.from_dict(load(name))


def test_gateway_api_tutorial_canary() -> None:
    c = canary("podinfo-gatewayapi.yaml")
    assert c.key == "test/podinfo"
    assert c.strategy is Strategy.CANARY
    assert c.provider_api_version() == "v1"
    ref = c.spec.service.gateway_refs[0]  # type: ignore[index]
    assert (ref.name, ref.namespace, ref.kind) == ("gateway", "istio-ingress", None)
    assert c.spec.service.hosts == ["www.example.com"]
    assert c.service_names() == ("podinfo", "podinfo-primary", "podinfo-canary")
    assert c.primary_name == "podinfo-primary"
    assert c.weight_schedule() == [10, 20, 30, 40, 50]
    assert c.max_weight == 50
    assert c.interval_seconds == 60
    assert c.threshold == 5
    assert c.progress_deadline_seconds == 60
    latency = c.analysis.metrics[1]  # type: ignore[index]
    assert latency.template_ref is not None and latency.template_ref.namespace == "istio-system"
    assert latency.interval_seconds == 30
    assert latency.effective_range.max == 0.5
    assert not latency.is_builtin
    hooks = {h.name: h for h in c.analysis.webhooks or ()}
    assert hooks["smoke-test"].hook_type == "pre-rollout"
    assert hooks["load-test"].hook_type == "rollout"
    assert hooks["load-test"].timeout_seconds == 5
    assert hooks["smoke-test"].metadata == {
        "type": "bash",
        "cmd": "curl -sd 'anon' http://podinfo-canary.test:9898/token | grep token",
    }


def test_ab_testing_canary() -> None:
    c = canary("podinfo-ab.yaml")
    assert c.strategy is Strategy.AB
    assert c.iterations == 10
    assert c.provider_api_version() == "v1beta1"
    header, cookie = c.analysis.match  # type: ignore[misc]
    assert header.headers["x-canary"].kind == "exact"  # type: ignore[index]
    assert header.headers["x-canary"].value == "insider"  # type: ignore[index]
    assert cookie.headers["cookie"].regex == "^(.*?;)?(canary=always)(;.*)?$"  # type: ignore[index]
    assert c.spec.service.target_port == "http"
    assert c.spec.service.gateway_refs[0].section_name == "https"  # type: ignore[index]
    builtin = c.analysis.metrics[0]  # type: ignore[index]
    assert builtin.is_builtin and builtin.effective_range.min == 99
    assert not builtin.skip_on_no_data


def test_blue_green_with_mirroring() -> None:
    c = canary("podinfo-bluegreen-mirror.yaml")
    assert c.strategy is Strategy.MIRROR
    assert c.iterations == 5
    assert c.provider_api_version() == "v1"
    assert (c.primary_ready_threshold, c.canary_ready_threshold) == (80, 50)
    hooks = {h.name: h for h in c.analysis.webhooks or ()}
    assert hooks["conformance-test"].retries == 3
    assert hooks["conformance-test"].timeout_seconds == 60
    assert hooks["gate"].timeout_seconds == 10
    assert hooks["notify"].mute_alert and hooks["notify"].disable_tls
    assert hooks["notify"].to_dict()["disableTLS"] is True


def test_blue_green_without_mirroring() -> None:
    obj = load("podinfo-bluegreen-mirror.yaml")
    del obj["spec"]["analysis"]["mirror"]
    assert Canary.from_dict(obj).strategy is Strategy.BLUE_GREEN


def test_session_affinity_and_step_weights() -> None:
    c = canary("podinfo-session-affinity.yaml")
    assert c.strategy is Strategy.CANARY
    assert c.service_names() == ("sticky-web", "sticky-web-primary", "sticky-web-canary")
    assert c.primary_name == "sticky-primary"
    assert c.weight_schedule() == [1, 5, 10, 25, 50]
    assert c.next_weight(0) == 1
    assert c.next_weight(10) == 25
    assert c.next_weight(50) == 50
    assert c.promotion_weights(50) == [(75, 25), (100, 0)]
    affinity = c.analysis.session_affinity
    assert affinity is not None and affinity.cookie_name == "flagger-cookie"
    assert affinity.cookie_attributes() == "Max-Age=21600; Path=/; SameSite=Lax; Secure"
    alert = c.analysis.alerts[0]  # type: ignore[index]
    assert alert.min_severity == "error" and alert.provider_ref.namespace == "flagger"


def test_every_flagger_field_loads() -> None:
    obj = load("podinfo-kitchen-sink.yaml")
    c = Canary.from_dict(obj)
    # canaryAnalysis is Flagger's deprecated spelling of analysis.
    assert c.spec.analysis is not None and c.spec.analysis.step_weight == 5
    assert c.interval_seconds == 15
    assert c.spec.target_ref.kind == "DaemonSet"
    assert c.spec.autoscaler_ref.primary_scaler_replicas.min_replicas == 2  # type: ignore[union-attr]
    assert c.spec.upstream_ref.namespace == "gloo-system"  # type: ignore[union-attr]
    svc = c.spec.service
    assert svc.traffic_policy == {
        "tls": {"mode": "ISTIO_MUTUAL"},
        "connectionPool": {"http": {"h2UpgradePolicy": "DEFAULT"}},
    }
    assert svc.rewrite is not None and svc.rewrite.path_modifier == "ReplacePrefixMatch"
    assert svc.retries is not None and svc.retries.per_try_timeout == "1s"
    assert svc.headers.request.set == {"x-version": "canary-aware"}  # type: ignore[union-attr]
    assert svc.mirror[0].backend_ref.port == 8080 and svc.mirror[0].percent == 10  # type: ignore[index]
    assert svc.unmanaged_metadata.labels == ["app.kubernetes.io/instance"]  # type: ignore[union-attr]
    assert svc.apex.labels == {"test": "label-test"}  # type: ignore[union-attr]
    legacy, query, template = c.analysis.metrics  # type: ignore[misc]
    assert legacy.effective_range.min == 99 and legacy.effective_range.max is None
    assert query.query and not query.is_builtin
    assert template.skip_on_no_data and template.dry_run
    assert template.template_variables == {"queue": "orders"}
    assert c.spec.revert_on_deletion and not c.suspended
    assert c.status.phase == "Progressing" and c.status.canary_weight == 10
    assert c.status.tracked_configs == {"configmap/everything-env": "6c4dc1b6cd"}
    promoted = c.status.condition("Promoted")
    assert promoted is not None and promoted.reason == "Progressing"
    assert promoted.last_transition_time == datetime(2026, 11, 22, 1, 40, tzinfo=UTC)
    assert c.metadata.annotations == {"example.com/owner": "platform"}


@pytest.mark.parametrize(
    "name",
    [
        "podinfo-gatewayapi.yaml",
        "podinfo-ab.yaml",
        "podinfo-bluegreen-mirror.yaml",
        "podinfo-session-affinity.yaml",
        "podinfo-kitchen-sink.yaml",
    ],
)
def test_round_trip(name: str) -> None:
    original = load(name)
    first = Canary.from_dict(original)
    written = first.to_dict()
    assert Canary.from_dict(written).to_dict() == written
    assert Canary.from_dict(written).spec.analysis == first.spec.analysis
    assert written["metadata"] == original["metadata"]
    assert written["spec"]["targetRef"] == original["spec"]["targetRef"]
    assert written["spec"]["service"]["gatewayRefs"] == original["spec"]["service"]["gatewayRefs"]
    analysis = original["spec"].get("analysis") or original["spec"]["canaryAnalysis"]
    assert written["spec"]["analysis"]["metrics"] == _with_float_ranges(analysis["metrics"])
    assert "canaryAnalysis" not in written["spec"]


def _with_float_ranges(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(metrics)
    for metric in out:
        for key in ("min", "max"):
            if key in metric.get("thresholdRange", {}):
                metric["thresholdRange"][key] = float(metric["thresholdRange"][key])
        if "threshold" in metric:
            metric["threshold"] = float(metric["threshold"])
    return out


def test_metadata_round_trips_fields_it_does_not_model() -> None:
    obj = load("podinfo-gatewayapi.yaml")
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    obj["metadata"]["resourceVersion"] = "42"
    c = Canary.from_dict(obj)
    assert c.metadata.resource_version == "42"
    assert c.to_dict()["metadata"]["managedFields"] == [{"manager": "kubectl"}]


def test_status_writes_kubernetes_times_and_history() -> None:
    c = canary("podinfo-gatewayapi.yaml")
    when = datetime(2026, 11, 22, 2, 0, 0, 123456, tzinfo=UTC)
    sample = MetricSample(iteration=1, weight=10, name="error-rate", value=0.2, passed=True, time=when)
    c.status.metric_history = c.status.with_samples([sample])
    c.status.last_transition_time = when
    status = c.to_dict()["status"]
    assert status["lastTransitionTime"] == "2026-11-22T02:00:00Z"
    assert status["metricHistory"] == [
        {
            "iteration": 1,
            "weight": 10,
            "name": "error-rate",
            "value": 0.2,
            "passed": True,
            "time": "2026-11-22T02:00:00Z",
        }
    ]
    assert MetricSample(iteration=1, weight=10, name="x", value=float("nan"), passed=False, time=when).value is None
    many = [sample.model_copy(update={"iteration": i}) for i in range(40)]
    kept = c.status.with_samples(many, limit=30)
    assert len(kept) == 30 and kept[-1].iteration == 39


def test_weight_schedule_never_exceeds_max_weight() -> None:
    obj = load("podinfo-gatewayapi.yaml")
    obj["spec"]["analysis"]["stepWeight"] = 20
    c = Canary.from_dict(obj)
    # Flagger would go 20, 40, 60; flaggerpy stops at maxWeight.
    assert c.weight_schedule() == [20, 40, 50]
    assert c.promotion_weights(50) == [(100, 0)]


def test_defaults_follow_flagger() -> None:
    obj = load("podinfo-gatewayapi.yaml")
    analysis = obj["spec"]["analysis"]
    for key in ("interval", "threshold", "maxWeight"):
        del analysis[key]
    del obj["spec"]["progressDeadlineSeconds"]
    del obj["spec"]["provider"]
    c = Canary.from_dict(obj)
    assert c.interval_seconds == 60
    assert c.threshold == 1
    assert c.max_weight == 100
    assert c.progress_deadline_seconds == 600
    assert c.provider_api_version() == "v1"
    assert (c.primary_ready_threshold, c.canary_ready_threshold) == (100, 100)
    assert c.weight_schedule() == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert not c.skip_analysis
    obj["spec"]["skipAnalysis"] = True
    assert Canary.from_dict(obj).skip_analysis


def test_snake_case_construction_for_code() -> None:
    obj = load("podinfo-gatewayapi.yaml")
    c = Canary.from_dict(obj)
    again = Canary(metadata=c.metadata, spec=c.spec.model_copy(update={"suspend": True}))
    assert again.suspended and again.to_dict()["spec"]["suspend"] is True


def test_metric_templates_and_alert_providers() -> None:
    error_rate = MetricTemplate.from_dict(load("podinfo-gatewayapi.yaml", "MetricTemplate", 0))
    assert error_rate.spec.provider.type == "prometheus"
    assert "{{ interval }}" in error_rate.spec.query
    latency = MetricTemplate.from_dict(load("podinfo-gatewayapi.yaml", "MetricTemplate", 1))
    assert latency.spec.provider.insecure_skip_verify and latency.spec.provider.secret_ref.name == "prom-basic-auth"  # type: ignore[union-attr]
    slack = AlertProvider.from_dict(load("podinfo-gatewayapi.yaml", "AlertProvider", 0))
    assert (slack.spec.type, slack.spec.channel, slack.spec.secret_ref.name) == (
        "slack",
        "on-call-alerts",
        "on-call-url",
    )  # type: ignore[union-attr]
    teams = AlertProvider.from_dict(load("podinfo-gatewayapi.yaml", "AlertProvider", 1))
    assert teams.spec.proxy == "http://proxy.internal:3128"
    assert teams.to_dict()["spec"] == {
        "type": "msteams",
        "address": "https://outlook.office.com/webhook/00000000",
        "proxy": "http://proxy.internal:3128",
    }


def test_status_copies_dump_their_own_status_and_the_same_spec() -> None:
    """The engine attaches each reconcile's status with a status-only copy; the JSON must follow that status and
    stay what pydantic would dump, while a copy with another spec never gets the first one's JSON."""
    parsed = canary("podinfo-gatewayapi.yaml")
    progressing = parsed.model_copy(update={"status": CanaryStatus.model_validate({"phase": "Progressing",
                                                                                  "canaryWeight": 20})})
    succeeded = parsed.model_copy(update={"status": CanaryStatus.model_validate({"phase": "Succeeded"})})
    for model in (parsed, progressing, succeeded, progressing):
        assert model.to_dict() == model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert progressing.to_dict()["status"]["canaryWeight"] == 20
    assert succeeded.to_dict()["status"]["phase"] == "Succeeded"
    edited = succeeded.model_copy(update={"spec": succeeded.spec.model_copy(update={"provider": "gatewayapi:v1beta1"})})
    assert edited.to_dict()["spec"]["provider"] == "gatewayapi:v1beta1"
    assert progressing.to_dict()["spec"]["provider"] == parsed.spec.provider
    assert parsed == canary("podinfo-gatewayapi.yaml")
