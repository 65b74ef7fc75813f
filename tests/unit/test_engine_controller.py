"""Which watch events wake which canary, and which canaries this controller handles."""

from __future__ import annotations

from flaggerpy.canary.context import is_gateway_canary
from flaggerpy.canary.handlers import canary_owner, config_index, spec_changed, target_index
from flaggerpy.kube.versions import is_older


def canary_obj(**spec: object) -> dict:
    return {"metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
            "spec": {"targetRef": {"kind": "Deployment", "name": "podinfo"}, **spec}}


def test_canaries_are_indexed_by_target() -> None:
    assert target_index(canary_obj()) == ["test/Deployment/podinfo"]
    assert target_index({"metadata": {"namespace": "x"}, "spec": {}}) == []


def test_owned_objects_map_back_to_their_canary() -> None:
    owned = {"metadata": {"namespace": "test", "ownerReferences": [
        {"kind": "Canary", "name": "podinfo", "controller": True}]}}
    assert canary_owner(owned) == "test/podinfo"
    assert canary_owner({"metadata": {"namespace": "test", "ownerReferences": [
        {"kind": "ReplicaSet", "name": "x", "controller": True}]}}) is None


def test_own_status_writes_do_not_wake_a_canary() -> None:
    old = canary_obj()
    new = {**canary_obj(), "status": {"phase": "Progressing"}}
    assert not spec_changed(old, new)
    annotated = canary_obj()
    annotated["metadata"]["annotations"] = {"flaggerpy.io/promote": "r1"}
    assert spec_changed(old, annotated)
    assert spec_changed(old, canary_obj(suspend=True))


def test_only_gateway_api_canaries_are_handled() -> None:
    assert is_gateway_canary(canary_obj(), "gatewayapi:v1")
    assert is_gateway_canary(canary_obj(provider="gatewayapi:v1beta1"), "gatewayapi:v1")
    assert not is_gateway_canary(canary_obj(provider="istio"), "gatewayapi:v1")
    assert not is_gateway_canary(canary_obj(), "istio")


def test_stale_cache_detection() -> None:
    assert is_older("10", "12")
    assert not is_older("12", "12")
    assert not is_older(None, "12")
    assert not is_older("abc", "12")


def test_workloads_are_indexed_by_the_configs_they_reference() -> None:
    dep = {"metadata": {"namespace": "test"}, "spec": {"template": {"spec": {
        "containers": [{"envFrom": [{"configMapRef": {"name": "cfg"}}]}],
        "volumes": [{"name": "s", "secret": {"secretName": "tls"}}]}}}}
    assert config_index(dep) == ["test/configmap/cfg", "test/secret/tls"]
