"""Apex/primary/canary Services from spec.service, and what counts as drift."""

from __future__ import annotations

import copy
from typing import Any

from flaggerpy.apis.flagger import Canary
from flaggerpy.canary import service as svc

TEMPLATE = {"spec": {"containers": [{"name": "app", "ports": [
    {"name": "http", "containerPort": 9898},
    {"name": "grpc", "containerPort": 9999},
    {"containerPort": 8125, "protocol": "UDP"},
]}, {"name": "sidecar", "ports": [{"containerPort": 15090}]}]}}


def make(**service: Any) -> tuple[Canary, dict[str, Any]]:
    obj = {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "c-1"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80, "gatewayRefs": [{"name": "gw", "namespace": "gateway"}], **service},
            "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
        },
    }
    return Canary.from_dict(obj), obj


def test_three_services_select_primary_and_canary_pods() -> None:
    canary, obj = make(targetPort=9898, portName="web", appProtocol="http")
    out = svc.build_services(canary, obj, "app", "podinfo", TEMPLATE)
    assert {role: s["metadata"]["name"] for role, s in out.items()} == {
        "apex": "podinfo", "primary": "podinfo-primary", "canary": "podinfo-canary"}
    assert out["apex"]["spec"]["selector"] == {"app": "podinfo-primary"}
    assert out["primary"]["spec"]["selector"] == {"app": "podinfo-primary"}
    assert out["canary"]["spec"]["selector"] == {"app": "podinfo"}
    assert out["apex"]["spec"]["ports"] == [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": 9898,
                                             "appProtocol": "http"}]
    assert out["canary"]["metadata"]["ownerReferences"][0]["uid"] == "c-1"


def test_service_name_and_custom_metadata() -> None:
    canary, obj = make(name="frontend", apex={"labels": {"tier": "edge"}, "annotations": {"a": "b"}},
                       canary={"labels": {"track": "canary"}})
    out = svc.build_services(canary, obj, "app", "podinfo")
    assert out["apex"]["metadata"]["name"] == "frontend"
    assert out["apex"]["metadata"]["labels"] == {"tier": "edge", "app": "frontend"}
    assert out["apex"]["metadata"]["annotations"] == {"a": "b"}
    assert out["canary"]["metadata"]["name"] == "frontend-canary"
    assert out["canary"]["metadata"]["labels"]["track"] == "canary"
    assert "annotations" not in out["primary"]["metadata"]


def test_port_discovery_adds_other_tcp_ports() -> None:
    canary, obj = make(targetPort=9898, portDiscovery=True)
    ports = svc.build_services(canary, obj, "app", "podinfo", TEMPLATE)["apex"]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("http", 80), ("grpc", 9999), ("tcp-sidecar-0", 15090)]


def test_drift_ignores_server_fields_and_foreign_metadata() -> None:
    canary, obj = make()
    desired = svc.build_services(canary, obj, "app", "podinfo")["apex"]
    live = copy.deepcopy(desired)
    live["spec"]["clusterIP"] = "10.0.0.1"
    live["metadata"]["labels"]["foreign"] = "x"
    live["metadata"]["resourceVersion"] = "7"
    assert not svc.needs_update(live, desired)
    live["spec"]["selector"] = {"app": "other"}
    assert svc.needs_update(live, desired)
    repaired = svc.merged(live, desired)
    assert repaired["spec"]["selector"] == {"app": "podinfo-primary"}
    assert repaired["metadata"]["labels"]["foreign"] == "x"
    assert repaired["spec"]["clusterIP"] == "10.0.0.1"
    live = copy.deepcopy(desired)
    live["spec"]["ports"][0]["port"] = 8080
    assert svc.needs_update(live, desired)
