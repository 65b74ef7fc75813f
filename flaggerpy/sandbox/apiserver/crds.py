"""CustomResourceDefinition handling: checking a CRD, its status, and the ResourceType it serves."""

from __future__ import annotations

import re
from typing import Any

from flaggerpy.sandbox.apiserver.errors import Cause
from flaggerpy.sandbox.apiserver.jsonio import object_field
from flaggerpy.sandbox.apiserver.registry import ResourceType, resource_type_from_crd
from flaggerpy.sandbox.clock import now


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """The problems kube-apiserver would report for this CRD (the subset that matters for serving it)."""
    causes: list[Cause] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("spec", "FieldValueRequired", "Required value")]
    group = spec.get("group")
    names = object_field(spec, "names")
    if not group:
        causes.append(Cause("spec.group", "FieldValueRequired", "Required value"))
    for field in ("plural", "kind"):
        if not isinstance(names.get(field), str) or not names.get(field):
            causes.append(Cause(f"spec.names.{field}", "FieldValueRequired", "Required value"))
    if not isinstance(group, str):
        causes.append(Cause("spec.group", "FieldValueInvalid", "Invalid value: must be a string"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(Cause("spec.scope", "FieldValueNotSupported",
                            f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(Cause("spec.versions", "FieldValueRequired", "Required value"))
    else:
        for i, v in enumerate(versions):
            if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v.get("name"):
                causes.append(Cause(f"spec.versions[{i}].name", "FieldValueRequired", "Required value"))
                continue
            causes.extend(_check_version(v, f"spec.versions[{i}]"))
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if len(storage) != 1:
            causes.append(Cause("spec.versions", "FieldValueInvalid",
                                f"Invalid value: {len(storage)}: must have exactly one version marked as storage "
                                "version"))
    name = (crd.get("metadata") or {}).get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        causes.append(Cause("metadata.name", "FieldValueInvalid",
                            f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    return causes


_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_NUMERIC = ("minimum", "maximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "minProperties",
            "maxProperties")
_STRINGS = ("pattern", "format", "x-kubernetes-list-type", "x-kubernetes-map-type")
_BOOLEANS = ("nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
             "x-kubernetes-embedded-resource", "exclusiveMinimum", "exclusiveMaximum", "uniqueItems")


def _check_version(version: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    subresources = version.get("subresources")
    if subresources is not None and not isinstance(subresources, dict):
        causes.append(Cause(f"{path}.subresources", "FieldValueInvalid", "Invalid value: must be an object"))
    columns = version.get("additionalPrinterColumns")
    if columns is not None and (not isinstance(columns, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("jsonPath"), str)
            for c in columns)):
        causes.append(Cause(f"{path}.additionalPrinterColumns", "FieldValueInvalid",
                            "Invalid value: each column needs a string name and jsonPath"))
    schema = version.get("schema")
    if schema is not None:
        if not isinstance(schema, dict):
            causes.append(Cause(f"{path}.schema", "FieldValueInvalid", "Invalid value: must be an object"))
        elif "openAPIV3Schema" in schema:
            causes.extend(check_schema(schema["openAPIV3Schema"], f"{path}.schema.openAPIV3Schema"))
    return causes


def check_schema(schema: Any, path: str) -> list[Cause]:
    """Structural problems that would keep the schema from being applied (kube-apiserver refuses them too)."""
    if not isinstance(schema, dict):
        return [Cause(path, "FieldValueInvalid", "Invalid value: must be an object")]
    causes: list[Cause] = []
    if "type" in schema and (not isinstance(schema["type"], str) or schema["type"] not in _TYPES):
        supported = ", ".join(f'"{t}"' for t in sorted(_TYPES))
        causes.append(Cause(f"{path}.type", "FieldValueNotSupported",
                            f"Unsupported value: {schema['type']!r}: supported values: {supported}"))
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            causes.append(Cause(f"{path}.properties", "FieldValueInvalid", "Invalid value: must be an object"))
        else:
            for key, sub in props.items():
                causes.extend(check_schema(sub, f"{path}.properties[{key}]"))
    for key in ("items", "not"):
        if key in schema:
            causes.extend(check_schema(schema[key], f"{path}.{key}"))
    additional = schema.get("additionalProperties")
    if additional is not None and not isinstance(additional, bool):
        causes.extend(check_schema(additional, f"{path}.additionalProperties"))
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            if not isinstance(schema[key], list):
                causes.append(Cause(f"{path}.{key}", "FieldValueInvalid", "Invalid value: must be a list"))
            else:
                for i, sub in enumerate(schema[key]):
                    causes.extend(check_schema(sub, f"{path}.{key}[{i}]"))
    required = schema.get("required")
    if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
        causes.append(Cause(f"{path}.required", "FieldValueInvalid", "Invalid value: must be a list of strings"))
    enum = schema.get("enum")
    if enum is not None and not isinstance(enum, list):
        causes.append(Cause(f"{path}.enum", "FieldValueInvalid", "Invalid value: must be a list"))
    for key in _NUMERIC:
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], int | float)):
            causes.append(Cause(f"{path}.{key}", "FieldValueInvalid", "Invalid value: must be a number"))
    for key in _STRINGS:
        if key in schema and not isinstance(schema[key], str):
            causes.append(Cause(f"{path}.{key}", "FieldValueInvalid", "Invalid value: must be a string"))
    for key in _BOOLEANS:
        if key in schema and not isinstance(schema[key], bool):
            causes.append(Cause(f"{path}.{key}", "FieldValueInvalid", "Invalid value: must be a boolean"))
    if isinstance(schema.get("pattern"), str):
        try:
            re.compile(schema["pattern"])
        except re.error as exc:
            causes.append(Cause(f"{path}.pattern", "FieldValueInvalid", f"Invalid value: not a regex: {exc}"))
    keys = schema.get("x-kubernetes-list-map-keys")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)):
        causes.append(Cause(f"{path}.x-kubernetes-list-map-keys", "FieldValueInvalid",
                            "Invalid value: must be a list of strings"))
    rules = schema.get("x-kubernetes-validations")
    if rules is not None and (not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("rule"), str) for r in rules)):
        causes.append(Cause(f"{path}.x-kubernetes-validations", "FieldValueInvalid",
                            "Invalid value: must be a list of objects with a string rule"))
    return causes


def accepted_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status kube-apiserver reports once a CRD's names are accepted and it is served."""
    spec = crd["spec"]
    stamp = now()
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
         "lastTransitionTime": stamp},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": stamp},
    ]
    return {
        "conditions": conditions,
        "acceptedNames": dict(spec["names"]),
        "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
    }


def resource_type(crd: dict[str, Any]) -> ResourceType:
    """The ResourceType the CRD serves."""
    return resource_type_from_crd(crd)
