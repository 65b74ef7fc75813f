"""What the dashboard's pages compute from a Canary, its Events, route and workloads (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flaggerpy.dashboard import views

NOW = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)


def _canary(status: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "7"},
        "spec": {"provider": "gatewayapi:v1",
                 "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                 "service": {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "gateway"}]},
                 "analysis": {"interval": "10s", "threshold": 3, "maxWeight": 30, "stepWeight": 10,
                              "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}},
                                          {"name": "latency", "thresholdRange": {"max": 500},
                                           "templateRef": {"name": "latency"}}],
                              "webhooks": [{"name": "gate", "type": "confirm-promotion",
                                            "url": "http://user:pw@gate.test:8080/check?token=s3cret#x"}],
                              **analysis}},
        "status": status,
    }


def _event(second: int, message: str, type_: str = "Normal") -> dict[str, Any]:
    stamp = f"2026-12-04T12:00:{second:02d}Z"
    return {"kind": "Event", "metadata": {"namespace": "test", "name": f"e{second}"},
            "involvedObject": {"kind": "Canary", "namespace": "test", "name": "podinfo"},
            "type": type_, "reason": "Synced", "message": message, "lastTimestamp": stamp, "count": 1}


def _sample(second: int, name: str, value: float | None, passed: bool, weight: int) -> dict[str, Any]:
    return {"iteration": 0, "weight": weight, "name": name, "value": value, "passed": passed,
            "time": f"2026-12-04T12:00:{second:02d}Z"}


RELEASE_1 = [
    _event(0, "New revision detected! Scaling up podinfo.test"),
    _event(1, "Advance podinfo.test canary weight 10"),
    _event(11, "Advance podinfo.test canary weight 20"),
    _event(21, "Advance podinfo.test canary weight 30"),
    _event(25, "Promotion completed! Scaling down podinfo.test"),
]
RELEASE_2 = [
    _event(26, "New revision detected! Scaling up podinfo.test"),
    _event(27, "Advance podinfo.test canary weight 10"),
    _event(29, "Rolling back podinfo.test failed checks threshold reached 3", "Warning"),
    _event(29, "Canary failed! Scaling down podinfo.test", "Warning"),
]


def test_the_timeline_is_the_current_releases_weight_steps_in_order() -> None:
    obj = _canary({"phase": "Progressing", "canaryWeight": 20, "lastTransitionTime": "2026-12-04T12:00:11Z"})
    page = views.detail(obj, RELEASE_1[:3], None, None, None, NOW)
    assert [(p["time"][-3:-1], p["weight"]) for p in page["timeline"]] == [("00", 0), ("01", 10), ("11", 20)]
    # A second release starts a new timeline; the first shows under past releases with its outcome.
    obj["status"] = {"phase": "Failed", "canaryWeight": 0, "lastTransitionTime": "2026-12-04T12:00:29Z",
                     "metricHistory": [_sample(27, "request-success-rate", 80.0, False, 10),
                                       _sample(12, "request-success-rate", 99.9, True, 20)]}
    page = views.detail(obj, RELEASE_1 + RELEASE_2, None, None, None, NOW)
    assert [p["weight"] for p in page["timeline"]] == [0, 10, 0]
    assert [(r["outcome"], r["checks"], r["failedChecks"]) for r in page["releases"]] == [
        ("Failed", 1, 1), ("Succeeded", 1, 0)]
    assert page["events"][0]["message"].startswith("Canary failed!")


def test_without_traffic_events_the_metric_samples_give_the_weights() -> None:
    obj = _canary({"phase": "Progressing", "canaryWeight": 20, "metricHistory": [
        _sample(5, "request-success-rate", 99.5, True, 10), _sample(15, "request-success-rate", 99.7, True, 20)]})
    assert [p["weight"] for p in views.detail(obj, [], None, None, None, NOW)["timeline"]] == [10, 20]


def test_metrics_carry_their_threshold_range_and_every_value() -> None:
    obj = _canary({"phase": "Progressing", "metricHistory": [
        _sample(5, "request-success-rate", 98.0, False, 10), _sample(6, "latency", None, False, 10),
        _sample(7, "undeclared", 1.0, True, 10)]})
    metrics = {m["name"]: m for m in views.detail(obj, [], None, None, None, NOW)["metrics"]}
    assert (metrics["request-success-rate"]["min"], metrics["request-success-rate"]["max"]) == (99, None)
    assert metrics["request-success-rate"]["samples"][0]["passed"] is False
    assert metrics["latency"]["max"] == 500 and metrics["latency"]["samples"][0]["value"] is None
    assert list(metrics) == ["request-success-rate", "latency", "undeclared"]


def test_webhook_urls_lose_credentials_query_and_fragment_and_show_their_events() -> None:
    obj = _canary({"phase": "WaitingPromotion"})
    waiting = _event(3, "Halt advancement podinfo.test waiting for promotion approval gate")
    hooks = views.detail(obj, [waiting], None, None, None, NOW)["webhooks"]
    assert hooks[0]["url"] == "http://gate.test:8080/check"
    assert [r["message"] for r in hooks[0]["results"]] == [waiting["message"]]


def test_webhook_calls_come_from_the_status_history() -> None:
    obj = _canary({"phase": "Progressing", "webhookHistory": [
        {"iteration": 0, "weight": 10, "name": "gate", "passed": True, "statusCode": 200,
         "time": "2026-12-04T12:00:01Z"},
        {"iteration": 0, "weight": 20, "name": "other", "passed": False, "error": "no answer within 10s",
         "time": "2026-12-04T12:00:11Z"}]})
    hooks = views.detail(obj, [], None, None, None, NOW)["webhooks"]
    assert [(c["weight"], c["passed"], c["statusCode"]) for c in hooks[0]["calls"]] == [(10, True, 200)]


def test_actions_follow_the_phase_and_suspend() -> None:
    assert views.available_actions(_canary({"phase": "Progressing"})) == {
        "promote": True, "abort": True, "retry": False, "pause": True, "resume": False}
    assert views.available_actions(_canary({"phase": "Failed"}))["retry"] is True
    paused = _canary({"phase": "Progressing"})
    paused["spec"]["suspend"] = True
    assert views.available_actions(paused) == {
        "promote": False, "abort": False, "retry": False, "pause": False, "resume": True}


def test_route_yaml_without_managed_fields_and_the_parents_accepted_condition() -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "podinfo", "namespace": "test", "generation": 3, "managedFields": [{"x": 1}]},
             "spec": {"parentRefs": [{"name": "gw", "namespace": "gateway"}]},
             "status": {"parents": [{"parentRef": {"name": "gw", "namespace": "gateway"}, "controllerName": "c",
                                     "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowed",
                                                     "message": "no", "observedGeneration": 3}]}]}}
    shown = views.route_view(route)
    assert shown is not None and "managedFields" not in shown["yaml"] and "parentRefs" in shown["yaml"]
    assert shown["parents"] == [{"parent": "gateway/gw", "controller": "c", "accepted": "False",
                                 "reason": "NotAllowed", "message": "no", "observedGeneration": 3}]


def test_an_invalid_canary_still_has_a_row_and_a_page() -> None:
    obj = _canary({"phase": "Progressing", "canaryWeight": 10})
    obj["spec"]["analysis"]["stepWeight"] = -5
    page = views.detail(obj, [], None, None, None, NOW)
    assert page["valid"] is False and page["row"]["weight"] == 10 and page["row"]["threshold"] is None
