"""CustomResourceDefinition handling: checking a CRD, its status, and the ResourceType it serves."""

from __future__ import annotations

from typing import Any

from flaggerpy.sandbox.clock import now
from flaggerpy.sandbox.errors import Cause
from flaggerpy.sandbox.registry import ResourceType, resource_type_from_crd


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """The problems kube-apiserver would report for this CRD (the subset that matters for serving it)."""
    causes: list[Cause] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("spec", "FieldValueRequired", "Required value")]
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    if not group:
        causes.append(Cause("spec.group", "FieldValueRequired", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(Cause(f"spec.names.{field}", "FieldValueRequired", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(Cause("spec.scope", "FieldValueNotSupported",
                            f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(Cause("spec.versions", "FieldValueRequired", "Required value"))
    else:
        for i, v in enumerate(versions):
            if not isinstance(v, dict) or not v.get("name"):
                causes.append(Cause(f"spec.versions[{i}].name", "FieldValueRequired", "Required value"))
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
