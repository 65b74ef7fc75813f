"""Checks of ``metadata`` that kube-apiserver makes for every kind, so bad input is a 422, never a crash."""

from __future__ import annotations

from typing import Any

from flaggerpy.sandbox.apiserver.errors import Cause

_OWNER_FIELDS = ("apiVersion", "kind", "name", "uid")
# kube-apiserver's TotalAnnotationSizeLimitB: keys and values together, in bytes.
ANNOTATIONS_LIMIT = 256 * 1024


def _string_map(value: Any, field: str) -> list[Cause]:
    if not isinstance(value, dict):
        return [Cause(field, "FieldValueTypeInvalid", f"Invalid value: {value!r}: must be a map of strings")]
    return [Cause(f"{field}[{k}]", "FieldValueTypeInvalid", f"Invalid value: {v!r}: must be a string")
            for k, v in value.items() if not isinstance(v, str)]


def check(meta: dict[str, Any]) -> list[Cause]:
    """Problems with names, labels, annotations, finalizers and ownerReferences."""
    causes: list[Cause] = []
    for field in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            causes.append(Cause(f"metadata.{field}", "FieldValueTypeInvalid",
                                f"Invalid value: {meta[field]!r}: must be a string"))
    for field in ("labels", "annotations"):
        if meta.get(field) is not None:
            causes.extend(_string_map(meta[field], f"metadata.{field}"))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        size = sum(len(str(k).encode()) + len(v.encode()) for k, v in annotations.items() if isinstance(v, str))
        if size > ANNOTATIONS_LIMIT:
            causes.append(Cause("metadata.annotations", "FieldValueTooLong",
                                f"Too long: must have at most {ANNOTATIONS_LIMIT} bytes"))
    finalizers = meta.get("finalizers")
    if finalizers is not None and (not isinstance(finalizers, list) or
                                   not all(isinstance(f, str) and f for f in finalizers)):
        causes.append(Cause("metadata.finalizers", "FieldValueInvalid",
                            f"Invalid value: {finalizers!r}: must be a list of non-empty strings"))
    owners = meta.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            causes.append(Cause("metadata.ownerReferences", "FieldValueTypeInvalid",
                                f"Invalid value: {owners!r}: must be a list"))
        else:
            for i, ref in enumerate(owners):
                if not isinstance(ref, dict):
                    causes.append(Cause(f"metadata.ownerReferences[{i}]", "FieldValueTypeInvalid",
                                        "must be an object"))
                    continue
                causes.extend(Cause(f"metadata.ownerReferences[{i}].{f}", "FieldValueRequired", "Required value")
                              for f in _OWNER_FIELDS if not isinstance(ref.get(f), str) or not ref.get(f))
    return causes
