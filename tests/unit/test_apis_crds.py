"""The CRDs in deploy/crds are generated from the models, structural, and accept Flagger's manifests."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flaggerpy.apis.crds import build_crds, render

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy" / "crds"
FIXTURES = ROOT / "tests" / "fixtures" / "flagger"
PLURALS = {"Canary": "canaries", "MetricTemplate": "metrictemplates", "AlertProvider": "alertproviders"}
VALUE_KEYWORDS = {
    "description",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
}


@functools.cache
def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CRDS / name).read_text())


def committed(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def schema_of(kind: str) -> dict[str, Any]:
    crd = committed(f"{PLURALS[kind]}.yaml")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def fixture_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(FIXTURES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", ["canaries.yaml", "metrictemplates.yaml", "alertproviders.yaml"])
def test_committed_crds_match_the_models(name: str) -> None:
    # Regenerate with: python -m flaggerpy.apis.crds deploy/crds
    assert (CRDS / name).read_text() == render(build_crds()[name])


@pytest.mark.parametrize("kind", list(PLURALS))
def test_schemas_are_structural(kind: str) -> None:
    crd = committed(f"{PLURALS[kind]}.yaml")
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{PLURALS[kind]}.flagger.app"
    assert crd["spec"]["names"]["categories"] == ["all"]
    version = crd["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    for path, node in walk(schema):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "not", "default", "nullable"} & node.keys(), path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node["type"] == "array":
            assert "items" in node, path
        for required in node.get("required", []):
            assert required in node.get("properties", {}), f"{path}: required {required} is not a property"
        unknown = set(node) - VALUE_KEYWORDS - {"type", "properties", "items", "additionalProperties"}
        assert unknown <= {"x-kubernetes-preserve-unknown-fields"}, f"{path}: {unknown}"


def test_printer_columns_point_at_schema_fields() -> None:
    schema = schema_of("Canary")
    version = committed("canaries.yaml")["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == [
        "Status",
        "Weight",
        "Suspended",
        "FailedChecks",
        "Interval",
        "Mirror",
        "StepWeight",
        "StepWeights",
        "MaxWeight",
        "Halted",  # flaggerpy's extension, the reason of the Halted condition
        "LastTransitionTime",
    ]
    paths = {path for path, _ in walk(schema)}
    for column in version["additionalPrinterColumns"]:
        # A condition filter reads a field of the conditions' items.
        path = column["jsonPath"].replace('[?(@.type=="Halted")]', "[]")
        assert path in paths or column["jsonPath"].startswith(".status.conditions"), column


@pytest.mark.parametrize(("label", "doc"), list(fixture_docs()), ids=[label for label, _ in fixture_docs()])
def test_schema_accepts_flagger_manifests(label: str, doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema_of(doc["kind"])).validate(doc)


def canary_doc() -> dict[str, Any]:
    return next(doc for label, doc in fixture_docs() if label.startswith("podinfo-gatewayapi.yaml:Canary"))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "service", "port"), "http"),
        (("spec", "service", "port"), 0),
        (("spec", "analysis", "stepWeight"), 0),
        (("spec", "analysis", "maxWeight"), 101),
        (("spec", "analysis", "metrics"), {"name": "x"}),
        (("spec", "analysis", "webhooks", 0, "type"), "pre"),
        (("spec", "service", "gatewayRefs", 0, "namespace"), "Bad_NS"),
        (("spec", "targetRef"), {"kind": "Deployment"}),
    ],
)
def test_schema_rejects_malformed_canaries(path: tuple[str | int, ...], value: Any) -> None:
    doc = copy.deepcopy(canary_doc())
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema_of("Canary")).validate(doc)


def test_schema_accepts_the_status_flaggerpy_writes() -> None:
    doc = copy.deepcopy(canary_doc())
    doc["status"] = {
        "phase": "Progressing",
        "canaryWeight": 20,
        "failedChecks": 0,
        "iterations": 0,
        "observedGeneration": 3,
        "lastTransitionTime": "2026-11-22T02:00:00Z",
        "metricHistory": [
            {
                "iteration": 2,
                "weight": 20,
                "name": "error-rate",
                "value": 0.1,
                "passed": True,
                "time": "2026-11-22T02:00:00Z",
            },
            {"iteration": 2, "weight": 20, "name": "latency", "passed": False, "time": "2026-11-22T02:00:00Z"},
        ],
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing", "message": "m"}],
    }
    jsonschema.Draft7Validator(schema_of("Canary")).validate(doc)


def test_free_form_fields_keep_unknown_content() -> None:
    schema = schema_of("Canary")
    traffic_policy = schema["properties"]["spec"]["properties"]["service"]["properties"]["trafficPolicy"]
    assert traffic_policy == {
        "type": "object",
        "description": traffic_policy["description"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    target_port = schema["properties"]["spec"]["properties"]["service"]["properties"]["targetPort"]
    assert target_port["x-kubernetes-int-or-string"] is True
