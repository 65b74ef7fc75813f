"""Checks on a Canary's routing fields and on the built rules that give field-naming errors before any write.

A typed Canary already has the right JSON types; raw JSON (the engine's working copy, tests, ``flaggerpy lint``)
may not, and a wrong type must become a :class:`FieldError`, never an AttributeError in a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.errors import FieldError

_SERVICE_SHAPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "appProtocol": (str,),
    "timeout": (str,),
    "backendTimeout": (str,),
    "hosts": (list,),
    "gatewayRefs": (list,),
    "match": (list,),
    "mirror": (list,),
    "rewrite": (dict,),
    "retries": (dict,),
    "headers": (dict,),
    "corsPolicy": (dict,),
    "apex": (dict,),
    "unmanagedMetadata": (dict,),
}
_ANALYSIS_SHAPES: dict[str, tuple[type, ...]] = {
    "match": (list,),
    "sessionAffinity": (dict,),
    "mirror": (bool,),
    "mirrorWeight": (int,),
    "interval": (str,),
}
_METADATA_SHAPES: dict[str, tuple[type, ...]] = {"labels": (dict,), "annotations": (dict,)}
_UNMANAGED_SHAPES: dict[str, tuple[type, ...]] = {"labels": (list,), "annotations": (list,)}
_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", bool: "true or false", int: "an integer"}


def _check_shapes(value: Any, shapes: dict[str, tuple[type, ...]], field: str, errors: list[FieldError]) -> None:
    for key, types in shapes.items():
        item = value.get(key)
        if item is None:
            continue
        if (isinstance(item, bool) and bool not in types) or not isinstance(item, types):
            errors.append(FieldError(f"{field}.{key}", f"must be {_TYPE_NAMES[types[0]]}"))


MAX_MATCHES_PER_RULE = 64
MAX_MATCHES_PER_ROUTE = 128


def check_match_counts(rules: list[dict[str, Any]], ab: bool, errors: list[FieldError]) -> None:
    """A/B matches combine with every service match; the CRD caps matches per rule and per route."""
    field = "spec.analysis.match" if ab else "spec.service.match"
    biggest = max((len(r.get("matches") or ()) for r in rules), default=0)
    total = sum(len(r.get("matches") or ()) for r in rules)
    if biggest > MAX_MATCHES_PER_RULE:
        errors.append(
            FieldError(field, f"gives {biggest} matches in one rule; Gateway API allows {MAX_MATCHES_PER_RULE}")
        )
    elif total > MAX_MATCHES_PER_ROUTE:
        errors.append(
            FieldError(field, f"gives {total} matches in the route; Gateway API allows {MAX_MATCHES_PER_ROUTE}")
        )


def shape_problems(doc: Mapping[str, Any]) -> list[FieldError]:
    """Wrong JSON types in the fields routing reads (a typed Canary never has these; raw JSON might)."""
    errors: list[FieldError] = []
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return [FieldError("spec", "must be an object")]
    for key in ("service", "targetRef"):
        if not isinstance(spec.get(key), Mapping):
            errors.append(FieldError(f"spec.{key}", "required: an object"))
    analysis_key = "analysis" if spec.get("analysis") is not None else "canaryAnalysis"
    analysis = spec.get(analysis_key)
    if analysis is not None and not isinstance(analysis, Mapping):
        errors.append(FieldError(f"spec.{analysis_key}", "must be an object"))
    if errors:
        return errors
    service = spec["service"]
    _check_shapes(service, _SERVICE_SHAPES, "spec.service", errors)
    if isinstance(service.get("apex"), Mapping):
        _check_shapes(service["apex"], _METADATA_SHAPES, "spec.service.apex", errors)
    if isinstance(service.get("unmanagedMetadata"), Mapping):
        _check_shapes(service["unmanagedMetadata"], _UNMANAGED_SHAPES, "spec.service.unmanagedMetadata", errors)
    if isinstance(analysis, Mapping):
        _check_shapes(analysis, _ANALYSIS_SHAPES, f"spec.{analysis_key}", errors)
    if not isinstance(spec["targetRef"].get("name", ""), str):
        errors.append(FieldError("spec.targetRef.name", "must be a string"))
    return errors
