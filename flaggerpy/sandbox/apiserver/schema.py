"""Structural-schema handling for custom resources, in kube-apiserver's order: prune, default, validate.

Covers ``type``, ``properties``, ``required``, ``items``, ``additionalProperties``, ``enum``, ``pattern``,
``minimum``/``maximum`` (and exclusive forms), ``multipleOf``, ``minLength``/``maxLength``,
``minItems``/``maxItems``, ``minProperties``/``maxProperties``, ``uniqueItems``, ``format`` (date-time, ipv4,
ipv6, uuid, hostname, byte), ``nullable``, ``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``,
``x-kubernetes-embedded-resource``, ``x-kubernetes-list-type`` (set/map duplicates), ``oneOf``/``anyOf``/
``allOf``/``not`` and ``default``. Messages and causes follow kube-apiserver's wording so a user sees the same
errors as on a real cluster.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re
import uuid
from functools import lru_cache
from typing import Any

from flaggerpy.sandbox.apiserver.errors import Cause

ROOT_KEYS = ("apiVersion", "kind", "metadata")
# "No previous value": None is a JSON value, so it cannot mark absence.
ABSENT: Any = object()
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _json_type(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(value: Any) -> str:
    """A value as kube prints it in messages (Go-like: strings quoted, numbers plain)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------- pruning


def _preserves(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _child(previous: Any, key: str) -> Any:
    return previous.get(key, ABSENT) if isinstance(previous, dict) else ABSENT


def prune(value: Any, schema: dict[str, Any], root: bool = False, previous: Any = ABSENT) -> Any:
    """Drop fields the schema does not declare (unless it preserves unknown fields); returns a new value.

    A subtree that *is* the matching subtree of ``previous`` (an object this schema admitted) is returned as is.
    """
    if value is previous:
        return value
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        result = {}
        for key, item in value.items():
            if (root or embedded) and key in ROOT_KEYS:
                result[key] = item
            elif key in props:
                # kube drops nulls of non-nullable fields before defaulting instead of rejecting them.
                if item is not None or props[key].get("nullable"):
                    result[key] = prune(item, props[key], previous=_child(previous, key))
            elif isinstance(additional, dict):
                if item is not None or additional.get("nullable"):
                    result[key] = prune(item, additional, previous=_child(previous, key))
            elif additional is True or _preserves(schema):
                result[key] = item
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(item, items) for item in value]
    return value


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "", root: bool = False) -> list[str]:
    """Paths that pruning would drop: what ``fieldValidation=Strict`` refuses."""
    found: list[str] = []
    if isinstance(value, dict):
        if _preserves(schema) and not schema.get("properties"):
            return found
        props: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key, item in value.items():
            child = _join(path, key)
            if (root or embedded) and key in ROOT_KEYS:
                continue
            if key in props:
                found.extend(unknown_fields(item, props[key], child))
            elif isinstance(additional, dict):
                found.extend(unknown_fields(item, additional, f"{path}[{key}]"))
            elif not (additional is True or _preserves(schema)):
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found.extend(unknown_fields(item, schema["items"], f"{path}[{i}]"))
    return found


# ---------------------------------------------------------------- defaulting


def apply_defaults(value: Any, schema: dict[str, Any], previous: Any = ABSENT) -> Any:
    """Fill in ``default`` for missing (or non-nullable null) properties, recursively; returns a new value.

    A subtree that *is* the matching subtree of ``previous`` (already defaulted by this schema) is kept as is.
    """
    if value is previous:
        return value
    if isinstance(value, dict):
        result = dict(value)
        props: dict[str, Any] = schema.get("properties") or {}
        for key, sub in props.items():
            if "default" in sub and (key not in result or (result[key] is None and not sub.get("nullable"))):
                result[key] = copy.deepcopy(sub["default"])
            if key in result:
                result[key] = apply_defaults(result[key], sub, _child(previous, key))
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in result:
                if key not in props:
                    result[key] = apply_defaults(result[key], additional, _child(previous, key))
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [apply_defaults(item, items) for item in value]
    return value


# ---------------------------------------------------------------- validation


def _type_ok(value: Any, schema: dict[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
    kind = schema.get("type")
    if kind is None:
        return True
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def format_ok(value: str, fmt: str) -> bool:
    """Whether a string has the OpenAPI ``format`` (unknown formats accept everything)."""
    try:
        if fmt == "date-time":
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "uuid":
            uuid.UUID(value)
        elif fmt == "hostname":
            return len(value) <= 253 and bool(_HOSTNAME_RE.match(value))
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


def duplicates(value: list[Any], schema: dict[str, Any], path: str) -> list[Cause]:
    """Duplicate items of a ``set``/``map`` list (or ``uniqueItems``), each as a cause."""
    list_type = schema.get("x-kubernetes-list-type")
    causes: list[Cause] = []
    if list_type == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(Cause(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {_show(item)}"))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            ident = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
            if ident in seen_keys:
                shown = "{" + ", ".join(f'"{k}":{_show(item.get(k))}' for k in keys) + "}"
                causes.append(Cause(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {shown}"))
            seen_keys.add(ident)
    return causes


def _numeric(value: float, schema: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    shown = _show(value)
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            causes.append(Cause(path, "FieldValueInvalid",
                                f"Invalid value: {shown}: {path} in body should be greater than {low}"))
        elif value < low:
            causes.append(Cause(path, "FieldValueInvalid",
                                f"Invalid value: {shown}: {path} in body should be greater than or equal to {low}"))
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            causes.append(Cause(path, "FieldValueInvalid",
                                f"Invalid value: {shown}: {path} in body should be less than {high}"))
        elif value > high:
            causes.append(Cause(path, "FieldValueInvalid",
                                f"Invalid value: {shown}: {path} in body should be less than or equal to {high}"))
    multiple = schema.get("multipleOf")
    if multiple and (value / multiple) % 1:
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {shown}: {path} in body should be a multiple of {multiple}"))
    return causes


def _string(value: str, schema: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(Cause(path, "FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {_show(value)}: {path} in body should be at least "
                            f"{schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if pattern and not _regex(pattern).search(value):
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {_show(value)}: {path} in body should match '{pattern}'"))
    fmt = schema.get("format")
    if fmt and not format_ok(value, fmt):
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {_show(value)}: {path} in body must be of type {fmt}: {_show(value)}"))
    return causes


def _combinators(value: Any, schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for sub in schema.get("allOf") or []:
        causes.extend(validate(value, sub, path))
    if "anyOf" in schema and not any(not validate(value, s, path) for s in schema["anyOf"]):
        causes.append(Cause(path, "FieldValueInvalid", f"Invalid value: {_show(value)}: {path} in body must "
                                                        "validate at least one schema (anyOf)"))
    if "oneOf" in schema:
        passing = sum(1 for s in schema["oneOf"] if not validate(value, s, path))
        if passing != 1:
            causes.append(Cause(path, "FieldValueInvalid", f"Invalid value: {_show(value)}: {path} in body must "
                                                            "validate one and only one schema (oneOf)"))
    if "not" in schema and not validate(value, schema["not"], path):
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {_show(value)}: {path} in body must not validate the schema (not)"))
    return causes


def validate(
    value: Any, schema: dict[str, Any], path: str = "", root: bool = False, previous: Any = ABSENT
) -> list[Cause]:
    """Every violation of ``schema`` by ``value``, each naming the field as kube-apiserver does.

    A subtree that *is* the matching subtree of ``previous`` (an object this schema admitted) is not checked again.
    """
    if value is previous:
        return []
    if value is None:
        if schema.get("nullable") or not schema.get("type"):
            return []
        return [Cause(path, "FieldValueTypeInvalid",
                      f"Invalid value: \"null\": {path} in body must be of type {schema['type']}: \"null\"")]
    if not _type_ok(value, schema):
        expected = "integer or string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
        # kube-apiserver names the type it got, not the value: `Invalid value: "string": ... type integer: "string"`.
        got = _show(_json_type(value))
        return [Cause(path, "FieldValueTypeInvalid",
                      f"Invalid value: {got}: {path} in body must be of type {expected}: {got}")]
    causes: list[Cause] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(v) for v in schema["enum"])
        causes.append(Cause(path, "FieldValueNotSupported",
                            f"Unsupported value: {_show(value)}: supported values: {supported}"))
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float):
        causes.extend(_numeric(value, schema, path))
    elif isinstance(value, str):
        causes.extend(_string(value, schema, path))
    elif isinstance(value, list):
        causes.extend(_array(value, schema, path))
    elif isinstance(value, dict):
        causes.extend(_object(value, schema, path, root, previous))
    causes.extend(_combinators(value, schema, path))
    return causes


def _array(value: list[Any], schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(Cause(path, "FieldValueTooMany",
                            f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {len(value)}: {path} in body should have at least "
                            f"{schema['minItems']} items"))
    causes.extend(duplicates(value, schema, path))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            causes.extend(validate(item, items, f"{path}[{i}]"))
    return causes


def _object(
    value: dict[str, Any], schema: dict[str, Any], path: str, root: bool, previous: Any = ABSENT
) -> list[Cause]:
    causes: list[Cause] = []
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(Cause(_join(path, key), "FieldValueRequired", "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(Cause(path, "FieldValueTooMany",
                            f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        causes.append(Cause(path, "FieldValueInvalid",
                            f"Invalid value: {len(value)}: {path} in body should have at least "
                            f"{schema['minProperties']} properties"))
    props: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in ROOT_KEYS and key not in props:
            continue
        if key in props:
            causes.extend(validate(item, props[key], _join(path, key), previous=_child(previous, key)))
        elif isinstance(additional, dict):
            causes.extend(validate(item, additional, f"{path}[{key}]" if path else key,
                                   previous=_child(previous, key)))
    return causes


def admit(
    obj: dict[str, Any], schema: dict[str, Any], previous: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[Cause]]:
    """Prune, default and validate a custom resource against its version's openAPIV3Schema.

    ``previous`` is the stored object ``obj`` replaces, when this same schema admitted it: the parts ``obj``
    shares with it (the very same dicts and lists, as a status write or a merge patch leaves them) were pruned,
    defaulted and validated then and are kept as they are. Shared means identical, not equal: ``1`` equals
    ``True`` and ``1.0`` in Python but not in JSON.
    """
    before = ABSENT if previous is None else previous
    pruned = prune(obj, schema, root=True, previous=before)
    defaulted = apply_defaults(pruned, schema, before)
    return defaulted, validate(defaulted, schema, "", root=True, previous=before)
