"""Pure workload rules: the primary copy, revision hashes, config tracking, HPA copy and readiness."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flaggerpy.canary import workload as wl

CANARY = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
          "metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1"}}


def deployment(**template_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}], **template_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podinfo", "namespace": "test", "uid": "d-1", "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "podinfo", "team": "a"},
            "annotations": {"deployment.kubernetes.io/revision": "3", "owner": "me"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo", "version": "1"}}, "spec": spec},
        },
        "status": {"replicas": 2},
    }


def test_primary_is_relabelled_and_stripped_of_server_fields() -> None:
    primary = wl.build_primary(deployment(), CANARY, label_prefixes=("*",))
    meta = primary["metadata"]
    assert meta["name"] == "podinfo-primary"
    assert meta["labels"] == {"app": "podinfo-primary", "team": "a"}
    assert meta["annotations"] == {"owner": "me"}
    for gone in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        assert gone not in meta
    assert "status" not in primary
    assert meta["ownerReferences"] == [{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                                        "uid": "u-1", "controller": True, "blockOwnerDeletion": True}]
    assert primary["spec"]["selector"] == {"matchLabels": {"app": "podinfo-primary"}}
    assert primary["spec"]["template"]["metadata"]["labels"] == {"app": "podinfo-primary", "version": "1"}
    assert primary["spec"]["replicas"] == 2


def test_primary_keeps_replicas_when_target_already_scaled_to_zero() -> None:
    target = deployment()
    target["spec"]["replicas"] = 0
    assert wl.build_primary(target, CANARY)["spec"]["replicas"] == 1
    assert wl.build_primary(target, CANARY, replicas=4)["spec"]["replicas"] == 4


@pytest.mark.parametrize("label", ["app", "name", "app.kubernetes.io/name"])
def test_selector_label_follows_flaggers_order(label: str) -> None:
    target = deployment()
    target["spec"]["selector"]["matchLabels"] = {label: "web", "other": "x"}
    assert wl.selector_label(target) == (label, "web")


def test_target_without_identity_label_is_a_clear_error() -> None:
    target = deployment()
    target["spec"]["selector"]["matchLabels"] = {"tier": "web"}
    with pytest.raises(wl.WorkloadError, match=r"spec\.selector\.matchLabels: needs one of the labels app"):
        wl.selector_label(target)


def test_spec_hash_is_stable_and_sensitive() -> None:
    template = deployment()["spec"]["template"]
    reordered = {"spec": template["spec"], "metadata": template["metadata"]}
    assert wl.spec_hash(template) == wl.spec_hash(reordered)
    changed = copy.deepcopy(template)
    changed["spec"]["containers"][0]["image"] = "podinfo:6.0.1"
    assert wl.spec_hash(changed) != wl.spec_hash(template)
    annotated = copy.deepcopy(template)
    annotated["metadata"]["annotations"] = {"timestamp": "now"}
    assert wl.spec_hash(annotated) != wl.spec_hash(template)


def test_config_refs_found_in_env_envfrom_volumes_and_projected() -> None:
    target = deployment(
        initContainers=[{"name": "init", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        volumes=[
            {"name": "a", "configMap": {"name": "cm-vol"}},
            {"name": "b", "secret": {"secretName": "sec-vol", "optional": True}},
            {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm-proj"}},
                                                    {"secret": {"name": "sec-proj"}}]}},
        ],
    )
    container = target["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "a"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec-env", "key": "b"}}},
        {"name": "C", "value": "plain"},
    ]
    container["envFrom"] = [{"configMapRef": {"name": "cm-from"}}]
    refs = wl.config_refs(target["spec"]["template"]["spec"])
    assert [r.key for r in refs] == [
        "configmap/cm-env", "configmap/cm-from", "configmap/cm-proj", "configmap/cm-vol",
        "secret/init-secret", "secret/sec-env", "secret/sec-proj", "secret/sec-vol",
    ]
    assert [r.optional for r in refs if r.name == "sec-vol"] == [True]

    primary = wl.build_primary(target, CANARY, config_renames={r.key: f"{r.name}-primary" for r in refs})
    pod = primary["spec"]["template"]["spec"]
    assert pod["volumes"][1]["secret"]["secretName"] == "sec-vol-primary"
    assert pod["volumes"][2]["projected"]["sources"][0]["configMap"]["name"] == "cm-proj-primary"
    assert pod["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "cm-env-primary"
    assert pod["initContainers"][0]["envFrom"][0]["secretRef"]["name"] == "init-secret-primary"
    # The target itself is never modified.
    assert target["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == "cm-vol"


def test_config_checksum_covers_data_only_and_copy_is_owned() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "cfg", "namespace": "test", "resourceVersion": "9", "labels": {"a": "b"}},
          "data": {"k": "v"}}
    relabelled = copy.deepcopy(cm)
    relabelled["metadata"]["labels"] = {"c": "d"}
    assert wl.config_checksum(cm) == wl.config_checksum(relabelled)
    edited = copy.deepcopy(cm)
    edited["data"]["k"] = "w"
    assert wl.config_checksum(cm) != wl.config_checksum(edited)
    clone = wl.build_config_copy(cm, CANARY)
    assert clone["metadata"]["name"] == "cfg-primary"
    assert clone["data"] == {"k": "v"} and "resourceVersion" not in clone["metadata"]
    assert wl.is_tracked(cm)
    cm["metadata"]["annotations"] = {wl.CONFIG_TRACKING_ANNOTATION: "disabled"}
    assert not wl.is_tracked(cm)


def test_hpa_copy_scales_primary() -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "podinfo", "namespace": "test", "uid": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                    "minReplicas": 2, "maxReplicas": 4}}
    clone = wl.build_primary_hpa(hpa, CANARY, "podinfo", replicas=(3, None))
    assert clone["metadata"]["name"] == "podinfo-primary"
    assert clone["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
    assert (clone["spec"]["minReplicas"], clone["spec"]["maxReplicas"]) == (3, 4)


def ready_status(**overrides: Any) -> dict[str, Any]:
    dep = deployment()
    dep["status"] = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                     **overrides}
    return dep


def test_readiness_judgement() -> None:
    assert wl.readiness(ready_status()).ready
    stale = wl.readiness(ready_status(observedGeneration=2))
    assert not stale.ready and "generation" in stale.message
    assert "1 out of 2 new replicas" in wl.readiness(ready_status(updatedReplicas=1)).message
    assert "old replicas are pending termination" in wl.readiness(ready_status(replicas=3)).message
    half = ready_status(availableReplicas=1)
    assert not wl.readiness(half).ready
    assert wl.readiness(half, threshold_percent=50).ready
    stuck = wl.readiness(ready_status(conditions=[{"type": "Progressing", "status": "False",
                                                   "reason": "ProgressDeadlineExceeded"}]))
    assert stuck.deadline_exceeded and "exceeded its progress deadline" in stuck.message


def test_daemonset_readiness() -> None:
    ds = {"kind": "DaemonSet", "metadata": {"name": "d", "namespace": "n", "generation": 1},
          "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                     "numberAvailable": 2}}
    assert not wl.readiness(ds).ready
    ds["status"]["numberAvailable"] = 3
    assert wl.readiness(ds).ready


def test_daemonset_scale_to_zero_is_not_a_revision() -> None:
    ds = deployment()
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    running = wl.spec_hash(ds["spec"]["template"])
    assert wl.replicas_of(ds) == 1
    ds["spec"]["template"]["spec"]["nodeSelector"] = {wl.SCALE_TO_ZERO_KEY: "true", "disk": "ssd"}
    assert wl.is_scaled_to_zero(ds) and wl.replicas_of(ds) == 0
    ssd_only = copy.deepcopy(ds)
    ssd_only["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert wl.spec_hash(ds["spec"]["template"]) == wl.spec_hash(ssd_only["spec"]["template"]) != running
    primary = wl.build_primary(ds, CANARY)
    assert primary["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert "replicas" not in primary["spec"]
    ssd_only["spec"]["template"]["spec"]["nodeSelector"] = {}
    assert wl.spec_hash(ssd_only["spec"]["template"]) == running


def test_a_workload_scaled_to_zero_is_never_ready() -> None:
    dep = ready_status(replicas=0, updatedReplicas=0, availableReplicas=0)
    dep["spec"]["replicas"] = 0
    verdict = wl.readiness(dep)
    assert not verdict.ready and verdict.message == "Deployment podinfo.test is scaled to zero"
