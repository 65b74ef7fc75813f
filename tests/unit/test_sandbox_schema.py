"""Structural-schema pruning, defaulting and validation with kube-apiserver's messages."""

from __future__ import annotations

from typing import Any

import pytest

from flaggerpy.sandbox.apiserver.crds import check_schema
from flaggerpy.sandbox.apiserver.schema import admit, apply_defaults, prune, validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
                "weight": {"type": "integer", "minimum": 0, "maximum": 100, "default": 1},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"},
                         "x-kubernetes-list-type": "set"},
                "refs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "maybe": {"type": "string", "nullable": True},
                "when": {"type": "string", "format": "date-time"},
                "either": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                           "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
                "nested": {"type": "object", "default": {}, "properties": {
                    "level": {"type": "string", "default": "info"}}},
            },
        },
    },
}


def fields(value: Any) -> dict[str, str]:
    return {c.field: c.message for c in validate(value, SCHEMA, "", root=True)}


def test_prune_drops_unknown_fields_but_keeps_preserved_and_root_metadata() -> None:
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "extra": 1,
           "spec": {"name": "a", "bogus": True, "free": {"anything": [1]}, "labels": {"k": "v"}}}
    assert prune(obj, SCHEMA, root=True) == {
        "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
        "spec": {"name": "a", "free": {"anything": [1]}, "labels": {"k": "v"}}}


def test_defaults_fill_missing_fields_recursively() -> None:
    assert apply_defaults({"spec": {"name": "a"}}, SCHEMA)["spec"] == {
        "name": "a", "weight": 1, "nested": {"level": "info"}}
    assert apply_defaults({"spec": {"name": "a", "weight": 7}}, SCHEMA)["spec"]["weight"] == 7


def test_valid_object_has_no_causes() -> None:
    obj, causes = admit({"spec": {"name": "abc", "port": "http", "tags": ["x"], "maybe": None,
                                  "when": "2024-01-02T03:04:05Z", "either": {"a": "1"}}}, SCHEMA)
    assert causes == []
    assert obj["spec"]["weight"] == 1


@pytest.mark.parametrize("spec, field, message", [
    ({}, "spec.name", "Required value"),
    ({"name": "abc", "weight": -1}, "spec.weight",
     "Invalid value: -1: spec.weight in body should be greater than or equal to 0"),
    ({"name": "abc", "weight": 101}, "spec.weight",
     "Invalid value: 101: spec.weight in body should be less than or equal to 100"),
    ({"name": "abc", "weight": "x"}, "spec.weight",
     # kube-apiserver names the type it got, not the value (hack/fidelity.py, case schema_errors).
     'Invalid value: "string": spec.weight in body must be of type integer: "string"'),
    ({"name": "abc", "ratio": 0}, "spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0"),
    ({"name": "abc", "mode": "C"}, "spec.mode", 'Unsupported value: "C": supported values: "A", "B"'),
    ({"name": "toolong"}, "spec.name", "Too long: may not be more than 5 bytes"),
    ({"name": "ABC"}, "spec.name", "Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"),
    ({"name": "abc", "port": 1.5}, "spec.port",
     'Invalid value: "number": spec.port in body must be of type integer or string: "number"'),
    ({"name": "abc", "tags": ["a", "b", "c"]}, "spec.tags", "Too many: 3: must have at most 2 items"),
    ({"name": "abc", "tags": []}, "spec.tags", "Invalid value: 0: spec.tags in body should have at least 1 items"),
    ({"name": "abc", "tags": ["a", "a"]}, "spec.tags[1]", 'Duplicate value: "a"'),
    ({"name": "abc", "refs": [{"name": "x"}, {"name": "x"}]}, "spec.refs[1]", 'Duplicate value: {"name":"x"}'),
    ({"name": "abc", "labels": {"k": 1}}, "spec.labels[k]",
     'Invalid value: "integer": spec.labels[k] in body must be of type string: "integer"'),
    ({"name": "abc", "when": "yesterday"}, "spec.when",
     'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"'),
    ({"name": "abc", "either": {"a": "1", "b": "2"}}, "spec.either",
     'Invalid value: {"a":"1","b":"2"}: spec.either in body must validate one and only one schema (oneOf)'),
])
def test_violations_name_the_field_like_kube_apiserver(spec: dict[str, Any], field: str, message: str) -> None:
    assert fields({"spec": spec}).get(field) == message


def test_null_for_non_nullable_field_is_dropped_then_defaulted() -> None:
    obj, causes = admit({"spec": {"name": "abc", "mode": None, "weight": None, "maybe": None}}, SCHEMA)
    assert causes == []
    assert "mode" not in obj["spec"] and obj["spec"]["weight"] == 1 and obj["spec"]["maybe"] is None


@pytest.mark.parametrize("bad, field", [
    ({"type": "thing"}, "openAPIV3Schema.type"),
    ({"properties": []}, "openAPIV3Schema.properties"),
    ({"properties": {"a": {"maxLength": "ten"}}}, "openAPIV3Schema.properties[a].maxLength"),
    ({"pattern": "(unclosed"}, "openAPIV3Schema.pattern"),
    ({"required": "a"}, "openAPIV3Schema.required"),
    ({"x-kubernetes-validations": [{"rule": 1}]}, "openAPIV3Schema.x-kubernetes-validations"),
])
def test_malformed_crd_schemas_are_refused_naming_the_field(bad: dict[str, Any], field: str) -> None:
    assert any(c.field.endswith(field) for c in check_schema(bad, "openAPIV3Schema"))
