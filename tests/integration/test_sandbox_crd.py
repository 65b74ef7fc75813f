"""Custom resources: served at their versions, validated, defaulted and pruned like kube-apiserver does."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from flaggerpy.sandbox import Sandbox
from tests.paths import GATEWAY_API_CRDS

GATEWAY_CRDS = GATEWAY_API_CRDS
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, workloads=False) as sandbox:
        yield sandbox


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sb.url) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    async with http.request(method, path, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


async def test_crd_is_served_with_discovery_and_status(http: aiohttp.ClientSession) -> None:
    status, crd = await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert status == 201
    assert {c["type"] for c in crd["status"]["conditions"]} == {"Established", "NamesAccepted"}
    _, resources = await call(http, "GET", "/apis/example.com/v1")
    names = {r["name"] for r in resources["resources"]}
    assert names == {"widgets", "widgets/status"}
    status, created = await call(http, "POST", WIDGETS, widget(size=3))
    assert status == 201 and created["metadata"]["generation"] == 1


async def test_custom_resource_defaults_pruning_and_status(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    body = widget(size=3, unknown="dropped", extra={"anything": {"goes": 1}}, port="http")
    body["status"] = {"phase": "ignored on create"}
    _, created = await call(http, "POST", WIDGETS, body)
    assert created["spec"] == {"size": 3, "color": "red", "extra": {"anything": {"goes": 1}}, "port": "http"}
    assert "status" not in created
    _, updated = await call(
        http, "PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "Ready"}}, "application/merge-patch+json"
    )
    assert updated["status"] == {"phase": "Ready"} and updated["metadata"]["generation"] == 1
    _, updated = await call(http, "PATCH", f"{WIDGETS}/w", {"spec": {"size": 4}}, "application/merge-patch+json")
    assert updated["metadata"]["generation"] == 2 and updated["status"] == {"phase": "Ready"}


async def test_custom_resource_validation_errors_name_fields(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    status, err = await call(http, "POST", WIDGETS, widget(size=0, color="green", port=1.5))
    assert status == 422 and err["reason"] == "Invalid"
    fields = {c["field"]: c["message"] for c in err["details"]["causes"]}
    assert fields["spec.size"] == "Invalid value: 0: spec.size in body should be greater than or equal to 1"
    assert fields["spec.color"] == 'Unsupported value: "green": supported values: "red", "blue"'
    assert "spec.port" in fields
    assert err["message"].startswith('Widget.example.com "w" is invalid: [')
    status, err = await call(http, "POST", WIDGETS, widget())
    assert status == 422 and err["details"]["causes"][0]["field"] == "spec.size"
    assert err["message"] == 'Widget.example.com "w" is invalid: spec.size: Required value'


async def test_strategic_merge_patch_is_refused_for_custom_resources(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await call(http, "POST", WIDGETS, widget(size=1))
    status, err = await call(
        http, "PATCH", f"{WIDGETS}/w", {"spec": {"size": 3}}, "application/strategic-merge-patch+json"
    )
    assert status == 415 and "merge-patch" in err["message"]


async def test_deleting_a_crd_removes_its_objects_and_endpoints(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await call(http, "POST", WIDGETS, widget(size=1))
    await call(http, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    status, _ = await call(http, "GET", WIDGETS)
    assert status == 404


@functools.cache
def gateway_crds() -> list[dict[str, Any]]:
    """The official CRDs, parsed once (pure-Python YAML takes seconds for them)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for path in sorted(GATEWAY_CRDS.glob("*.yaml"))
            for doc in yaml.load_all(path.read_text(), Loader=loader) if doc]


@pytest.fixture
async def gateway_api(sb: Sandbox) -> None:
    if not GATEWAY_CRDS.is_dir():
        pytest.skip("Gateway API CRDs not found next to the repository")
    for doc in gateway_crds():
        await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", doc)


def route(*backend_refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": list(backend_refs)}]},
    }


async def test_valid_httproute_is_defaulted(gateway_api: None, http: aiohttp.ClientSession) -> None:
    status, created = await call(
        http, "POST", ROUTES, route({"name": "primary", "port": 80}, {"name": "canary", "port": 80, "weight": 0})
    )
    assert status == 201, created
    rule = created["spec"]["rules"][0]
    assert rule["backendRefs"][0]["weight"] == 1
    assert rule["backendRefs"][0]["kind"] == "Service"
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert created["spec"]["parentRefs"][0]["kind"] == "Gateway"
    status, old_version = await call(http, "GET", ROUTES.replace("/v1/", "/v1beta1/") + "/podinfo")
    assert status == 200 and old_version["apiVersion"] == "gateway.networking.k8s.io/v1beta1"


async def test_invalid_httproutes_are_rejected(gateway_api: None, http: aiohttp.ClientSession) -> None:
    status, err = await call(http, "POST", ROUTES, route({"name": "primary", "port": 80, "weight": -1}))
    assert status == 422
    assert err["details"]["causes"][0]["field"] == "spec.rules[0].backendRefs[0].weight"
    assert "spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0" in err["message"]
    status, err = await call(http, "POST", ROUTES, route({"port": 80}))
    assert status == 422
    assert {
        "field": "spec.rules[0].backendRefs[0].name",
        "reason": "FieldValueRequired",
        "message": "Required value",
    } in err["details"]["causes"]


async def test_cel_rules_of_the_gateway_api_are_enforced(gateway_api: None, http: aiohttp.ClientSession) -> None:
    pytest.importorskip("cel", reason="common-expression-language is not installed: CEL rules are not evaluated")
    body = route({"name": "primary", "port": 80})
    body["spec"]["rules"][0]["matches"] = [{"path": {"type": "Exact", "value": "no-leading-slash"}}]
    status, err = await call(http, "POST", ROUTES, body)
    assert status == 422
    cause = err["details"]["causes"][0]
    assert cause["field"] == "spec.rules[0].matches[0].path"
    assert "must be an absolute path" in cause["message"]


async def test_cel_rules_can_be_turned_off() -> None:
    if not GATEWAY_CRDS.is_dir():
        pytest.skip("Gateway API CRDs not found next to the repository")
    async with Sandbox(dataplane=False, workloads=False, cel_rules=False) as sandbox:
        for doc in gateway_crds():
            await sandbox.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", doc)
        body = route({"name": "primary", "port": 80})
        body["metadata"]["namespace"] = "default"
        body["spec"]["rules"][0]["matches"] = [{"path": {"type": "Exact", "value": "no-leading-slash"}}]
        created = await sandbox.cluster.create("gateway.networking.k8s.io", "httproutes", body)
        assert created["spec"]["rules"][0]["matches"][0]["path"]["value"] == "no-leading-slash"


async def test_strict_field_validation_refuses_unknown_fields(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    status, err = await call(http, "POST", f"{WIDGETS}?fieldValidation=Strict", widget(size=1, colour="red"))
    assert status == 400 and err["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour"')
    status, _ = await call(http, "POST", f"{WIDGETS}?fieldValidation=Strict", widget(size=1, extra={"x": 1}))
    assert status == 201, "preserved fields are not unknown"


async def test_kubectl_tables_use_printer_columns(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await call(http, "POST", WIDGETS, widget(size=1))
    await call(http, "PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "Ready"}}, "application/merge-patch+json")
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    async with http.get(WIDGETS, headers=headers) as resp:
        table = await resp.json()
    assert table["kind"] == "Table"
    # As kube-apiserver: a CRD's own printer columns and no Age (that is only the default of a CRD without any).
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase"]
    assert table["rows"][0]["cells"][:2] == ["w", "Ready"]


async def test_crd_update_serves_new_versions(http: aiohttp.ClientSession) -> None:
    _, crd = await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await call(http, "POST", WIDGETS, widget(size=2))
    v2 = dict(crd["spec"]["versions"][0], name="v2", storage=False)
    crd["spec"]["versions"].append(v2)
    status, _ = await call(http, "PUT", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
                           crd)
    assert status == 200
    status, got = await call(http, "GET", "/apis/example.com/v2/namespaces/default/widgets/w")
    assert status == 200 and got["apiVersion"] == "example.com/v2" and got["spec"]["size"] == 2
    _, group = await call(http, "GET", "/apis/example.com")
    assert group["preferredVersion"]["version"] == "v2"
