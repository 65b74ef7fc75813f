"""Fields kube-apiserver refuses to change once set, so controllers meet the same 422s as on a cluster."""

from __future__ import annotations

import json
from typing import Any

from flaggerpy.sandbox.apiserver.errors import Cause
from flaggerpy.sandbox.apiserver.jsonio import object_field
from flaggerpy.sandbox.apiserver.registry import StorageKey

_SELECTOR_KINDS = frozenset({("apps", "deployments"), ("apps", "daemonsets"), ("apps", "replicasets")})
_IMMUTABLE_DATA = frozenset({("", "configmaps"), ("", "secrets")})


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _immutable(field: str, value: Any) -> Cause:
    return Cause(field, "FieldValueInvalid", f"Invalid value: {_show(value)}: field is immutable")


def check(key: StorageKey, current: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """Changes from ``current`` to ``new`` that are not allowed."""
    old_spec = object_field(current, "spec")
    new_spec = object_field(new, "spec")
    causes: list[Cause] = []
    if key in _SELECTOR_KINDS and "selector" in old_spec and new_spec.get("selector") != old_spec["selector"]:
        causes.append(_immutable("spec.selector", new_spec.get("selector")))
    if key == ("", "services"):
        old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip and "None" not in (old_ip, new_ip):
            causes.append(_immutable("spec.clusterIP", new_ip))
    if key in _IMMUTABLE_DATA and current.get("immutable") is True:
        for field in ("data", "binaryData", "stringData"):
            if new.get(field) != current.get(field):
                causes.append(Cause(field, "FieldValueForbidden",
                                    "Forbidden: field is immutable when `immutable` is set"))
        if new.get("immutable") is not True:
            causes.append(Cause("immutable", "FieldValueForbidden",
                                "Forbidden: field is immutable when `immutable` is set"))
    return causes
