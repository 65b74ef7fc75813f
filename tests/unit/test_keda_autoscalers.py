"""KEDA ScaledObjects as ``spec.autoscalerRef``: the primary copy, the pause switch, the checks that name the field,
and the sandbox operator's pure rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary
from flaggerpy.canary import autoscalers as scalers
from flaggerpy.sandbox.controllers import keda
from tests.manifests import canary

CANARY = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
          "metadata": {"name": "podinfo", "namespace": "test", "uid": "c-1"}}


def scaled_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": "podinfo-so", "namespace": "test", "uid": "s-1", "resourceVersion": "7", "generation": 2,
            "labels": {"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "apps"},
            "annotations": {scalers.PAUSED_REPLICAS_ANNOTATION: "0", "team": "web",
                            "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "spec": {
            "scaleTargetRef": {"name": "podinfo"},
            "minReplicaCount": 1,
            "maxReplicaCount": 5,
            "triggers": [
                {"type": "prometheus", "name": "rps",
                 "metadata": {"serverAddress": "http://prom:9090", "threshold": "10",
                              "query": 'sum(rate(http_requests_total{app="podinfo-canary"}[1m]))'}},
                {"type": "prometheus", "name": "latency",
                 "metadata": {"query": 'histogram_quantile(0.99, rate(d{app="podinfo"}[1m]))'}},
                {"type": "cpu", "metadata": {"value": "60"}},
            ],
            **spec,
        },
        "status": {"scaleTargetKind": "apps/v1.Deployment"},
    }


def test_primary_copy_scales_the_primary_and_is_owned_by_the_canary() -> None:
    so = scaled_object(advanced={"horizontalPodAutoscalerConfig": {"name": "podinfo-hpa"}})
    before = copy.deepcopy(so)
    clone = scalers.build_primary_scaled_object(so, CANARY, "podinfo", replicas=(2, None))
    assert so == before
    meta = clone["metadata"]
    assert meta["name"] == "podinfo-so-primary"
    assert meta["ownerReferences"][0]["kind"] == "Canary" and meta["ownerReferences"][0]["uid"] == "c-1"
    assert clone["spec"]["scaleTargetRef"] == {"name": "podinfo-primary"}
    assert (clone["spec"]["minReplicaCount"], clone["spec"]["maxReplicaCount"]) == (2, 5)
    # KEDA's own HPA of the copy must not collide with the target's.
    assert clone["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == "podinfo-hpa-primary"
    assert "status" not in clone and "resourceVersion" not in meta and "uid" not in meta


def test_primary_copy_never_inherits_the_pause_or_flux_ownership() -> None:
    meta = scalers.build_primary_scaled_object(scaled_object(), CANARY, "podinfo")["metadata"]
    assert meta["annotations"] == {"team": "web"}
    assert meta["labels"] == {"app": "podinfo"}


def test_without_primary_queries_every_query_is_rewritten_for_the_primary() -> None:
    triggers = scalers.build_primary_scaled_object(scaled_object(), CANARY, "podinfo")["spec"]["triggers"]
    assert triggers[0]["metadata"]["query"] == 'sum(rate(http_requests_total{app="podinfo-primary"}[1m]))'
    assert triggers[1]["metadata"]["query"] == 'histogram_quantile(0.99, rate(d{app="podinfo-primary"}[1m]))'
    assert triggers[0]["metadata"]["threshold"] == "10"
    assert triggers[2]["metadata"] == {"value": "60"}


@pytest.mark.parametrize(("query", "expected"), [
    ('up{app="podinfo"}', 'up{app="podinfo-primary"}'),
    ('up{app="podinfo-canary"}', 'up{app="podinfo-primary"}'),
    ('up{app="podinfo-primary"}', 'up{app="podinfo-primary"}'),
    ('a{d="podinfo"} / b{d="podinfo-canary"}', 'a{d="podinfo-primary"} / b{d="podinfo-primary"}'),
    ("vector(1)", "vector(1)"),
])
def test_primary_query_rewrite(query: str, expected: str) -> None:
    assert scalers.primary_query(query, "podinfo") == expected


def test_primary_queries_replace_named_triggers_and_leave_the_others() -> None:
    queries = {"rps": 'sum(rate(http_requests_total{app="podinfo-primary"}[1m]))'}
    so = scaled_object()
    triggers = scalers.build_primary_scaled_object(so, CANARY, "podinfo", queries)["spec"]["triggers"]
    assert triggers[0]["metadata"]["query"] == queries["rps"]
    assert triggers[0]["metadata"]["serverAddress"] == "http://prom:9090"
    # As in Flagger: a trigger without an entry keeps its own query.
    assert triggers[1]["metadata"]["query"] == so["spec"]["triggers"][1]["metadata"]["query"]


def test_primary_copy_changes_when_the_target_scaled_object_does() -> None:
    one = scalers.build_primary_scaled_object(scaled_object(), CANARY, "podinfo")
    two = scalers.build_primary_scaled_object(scaled_object(maxReplicaCount=9), CANARY, "podinfo")
    assert one["spec"] != two["spec"]
    assert scalers.build_primary_scaled_object(scaled_object(), CANARY, "podinfo") == one


def test_pause_patch_is_written_only_when_the_state_differs() -> None:
    key = scalers.PAUSED_REPLICAS_ANNOTATION
    paused = scaled_object()
    assert scalers.pause_patch(paused, 0) is None
    assert scalers.pause_patch(paused, None) == {"metadata": {"annotations": {key: None}}}
    running = scaled_object()
    del running["metadata"]["annotations"][key]
    assert scalers.pause_patch(running, None) is None
    assert scalers.pause_patch(running, 0) == {"metadata": {"annotations": {key: "0"}}}


def test_an_autoscaler_of_another_workload_is_refused_naming_the_field() -> None:
    so = scaled_object(scaleTargetRef={"name": "other"})
    with pytest.raises(scalers.AutoscalerError) as err:
        scalers.check_target("ScaledObject", so, "Deployment", "podinfo")
    assert str(err.value).startswith("spec.autoscalerRef.name: ScaledObject test/podinfo-so scales Deployment/other")
    assert err.value.reason == "InvalidAutoscaler"
    scalers.check_target("ScaledObject", scaled_object(), "Deployment", "podinfo")
    with pytest.raises(scalers.AutoscalerError):
        scalers.check_target("ScaledObject", scaled_object(), "DaemonSet", "podinfo")


def test_primary_queries_naming_a_missing_trigger_are_refused() -> None:
    with pytest.raises(scalers.AutoscalerError) as err:
        scalers.check_queries({"rps": "q", "errors": "q"}, scaled_object())
    assert str(err.value).startswith("spec.autoscalerRef.primaryScalerQueries.errors: ScaledObject test/podinfo-so "
                                     "has no trigger named 'errors' (its named triggers: rps, latency)")
    scalers.check_queries({"rps": "q"}, scaled_object())
    scalers.check_queries(None, scaled_object())


def test_autoscaler_kind_must_be_hpa_or_scaled_object() -> None:
    obj = canary(autoscalerRef={"apiVersion": "keda.sh/v1alpha1", "kind": "VerticalPodAutoscaler", "name": "x"})
    with pytest.raises(SpecError) as err:
        Canary.from_dict(obj)
    assert [(e.field, e.problem) for e in err.value.errors] == [
        ("spec.autoscalerRef.kind", "must be HorizontalPodAutoscaler or ScaledObject (got 'VerticalPodAutoscaler')"),
    ]
    for kind in ("ScaledObject", "HorizontalPodAutoscaler", None):
        ok = canary(autoscalerRef={"kind": kind, "name": "x"} if kind else {"name": "x"})
        assert Canary.from_dict(ok).spec.autoscaler_ref.scaler_kind == (kind or "HorizontalPodAutoscaler")  # type: ignore[union-attr]


# -- the sandbox's KEDA operator --------------------------------------------------------------------------------


def test_operator_keeps_replicas_within_bounds_and_holds_a_paused_target() -> None:
    so = scaled_object()
    assert keda.desired_replicas(so, 3) == 0  # paused at 0
    del so["metadata"]["annotations"][keda.PAUSED_REPLICAS_ANNOTATION]
    assert [keda.desired_replicas(so, n) for n in (0, 3, 9)] == [1, 3, 5]
    bare = {"metadata": {"name": "x"}, "spec": {"scaleTargetRef": {"name": "podinfo"}}}
    assert [keda.desired_replicas(bare, n) for n in (0, 7, 500)] == [0, 7, 100]
    bare["metadata"]["annotations"] = {keda.PAUSED_REPLICAS_ANNOTATION: "not-a-number"}
    assert keda.desired_replicas(bare, 7) == 7


def test_operator_status_reports_target_pause_and_readiness() -> None:
    status = keda.status(scaled_object(), {"spec": {"replicas": 0}})
    assert status["scaleTargetKind"] == "apps/v1.Deployment"
    assert status["pausedReplicaCount"] == 0
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Active": "False", "Fallback": "False", "Paused": "True"}
    missing = keda.status(scaled_object(), None)
    assert {c["type"]: c["status"] for c in missing["conditions"]}["Ready"] == "False"


def test_crd_is_structural_and_names_scaled_objects() -> None:
    from flaggerpy.sandbox.apiserver.crds import validate_crd

    crd = keda.crd()
    assert validate_crd(crd) == []
    assert crd["metadata"]["name"] == "scaledobjects.keda.sh"
    assert crd["spec"]["names"]["shortNames"] == ["so"]
