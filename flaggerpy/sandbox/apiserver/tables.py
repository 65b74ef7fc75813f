"""``meta.k8s.io/v1 Table`` responses, so ``kubectl get`` prints useful columns (CRD printer columns included)."""

from __future__ import annotations

import datetime
import re
from typing import Any

from flaggerpy.sandbox.apiserver.registry import ResourceType

_NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "description": "Name of the object",
                "priority": 0}
_AGE_COLUMN = {"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}
_TOKEN_RE = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")
_BUILTIN_COLUMNS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("apps", "deployments"): [
        ("Ready", "string", "ready"), ("Up-to-date", "integer", ".status.updatedReplicas"),
        ("Available", "integer", ".status.availableReplicas"),
    ],
    ("", "services"): [("Type", "string", ".spec.type"), ("Cluster-IP", "string", ".spec.clusterIP")],
    ("", "namespaces"): [("Status", "string", ".status.phase")],
    ("", "configmaps"): [("Data", "string", "count:data,binaryData")],
    ("", "secrets"): [("Type", "string", ".type"), ("Data", "integer", "count:data")],
    ("apps", "daemonsets"): [
        ("Desired", "integer", ".status.desiredNumberScheduled"),
        ("Current", "integer", ".status.currentNumberScheduled"),
        ("Ready", "integer", ".status.numberReady"), ("Up-to-date", "integer", ".status.updatedNumberScheduled"),
    ],
    ("autoscaling", "horizontalpodautoscalers"): [
        ("Reference", "string", "target"), ("MinPods", "integer", ".spec.minReplicas"),
        ("MaxPods", "integer", ".spec.maxReplicas"), ("Replicas", "integer", ".status.currentReplicas"),
    ],
    ("coordination.k8s.io", "leases"): [("Holder", "string", ".spec.holderIdentity")],
    ("", "pods"): [
        ("Ready", "string", "pod-ready"), ("Status", "string", "pod-status"),
        ("Restarts", "integer", "pod-restarts"), ("IP", "string", ".status.podIP"),
    ],
    ("discovery.k8s.io", "endpointslices"): [
        ("AddressType", "string", ".addressType"), ("Ports", "string", "slice-ports"),
        ("Endpoints", "string", "slice-endpoints"),
    ],
    ("", "events"): [
        ("Type", "string", ".type"), ("Reason", "string", ".reason"), ("Object", "string", "involved"),
        ("Message", "string", ".message"),
    ],
}


def wants_table(accept: str) -> bool:
    """Whether the client (kubectl) asked for a Table."""
    return "as=Table" in accept


def json_path(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath forms CRD printer columns use (``.a.b``, ``[0]``, ``[?(@.type=="X")]``)."""
    values = [obj]
    for m in _TOKEN_RE.finditer(path.strip().strip("{}")):
        field, index, filter_key, filter_value = m.groups()
        next_values = []
        for value in values:
            if field is not None and isinstance(value, dict) and field in value:
                next_values.append(value[field])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                next_values.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                next_values.extend(
                    item for item in value
                    if isinstance(item, dict) and str(json_path(item, "." + filter_key)) == filter_value
                )
        values = next_values
    return values[0] if values else None


def age(timestamp: str | None) -> str:
    """kubectl's short duration format (``45s``, ``3m``, ``2h``, ``5d``)."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _cell(obj: dict[str, Any], path: str, kind: str) -> Any:
    if path == "ready":
        status = obj.get("status") or {}
        return f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 1)}"
    if path.startswith("count:"):
        return sum(len(obj.get(f) or {}) for f in path[len("count:"):].split(","))
    if path == "target":
        ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    if path.startswith(("pod-", "slice-")):
        return _pod_or_slice_cell(obj, path)
    if path == "involved":
        involved = obj.get("involvedObject") or {}
        return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    value = json_path(obj, path)
    if kind == "date" and isinstance(value, str):
        return age(value)
    if value is None:
        return "" if kind == "string" else None
    return value


def _pod_or_slice_cell(obj: dict[str, Any], path: str) -> Any:
    """The computed cells kubectl shows for pods (READY, STATUS, RESTARTS) and EndpointSlices (PORTS, ENDPOINTS)."""
    status = obj.get("status") or {}
    containers = status.get("containerStatuses") or []
    if path == "pod-ready":
        total = len((obj.get("spec") or {}).get("containers") or [])
        return f"{sum(1 for c in containers if c.get('ready'))}/{total}"
    if path == "pod-status":
        return "Terminating" if obj["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
    if path == "pod-restarts":
        return sum(int(c.get("restartCount") or 0) for c in containers)
    if path == "slice-ports":
        ports = [str(p.get("port")) for p in obj.get("ports") or []]
        return ",".join(ports) or "<unset>"
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "") \
        or "<unset>"


def _custom_cell(obj: dict[str, Any], path: str, kind: str) -> Any:
    """A printer column's cell as kube-apiserver renders it: absent is null, a string column shows any value as
    text, a date column as an age."""
    value = json_path(obj, path)
    if value is None:
        return None
    if kind == "date":
        return age(value) if isinstance(value, str) else None
    if kind == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def table(
    rt: ResourceType, version: str, objs: list[dict[str, Any]], rv: Any, continue_token: str | None = None
) -> dict[str, Any]:
    """A Table of ``objs``: Name and the resource's columns. A custom resource's columns are its CRD's printer
    columns (with their priority: 1 is kubectl's ``-o wide``) and Age only when the CRD defines none, as
    kube-apiserver does; built-in kinds get Age last."""
    columns = [_NAME_COLUMN]
    if rt.custom:
        defined = rt.printer_columns.get(version, []) or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        specs = [(c["name"], c.get("type", "string"), c["jsonPath"]) for c in defined]
        columns += [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": int(c.get("priority", 0))}
                    for c in defined]
        has_age = False
    else:
        specs = _BUILTIN_COLUMNS.get(rt.key, [])
        columns += [{"name": name, "type": "string" if kind == "date" else kind, "format": "", "description": path,
                     "priority": 0} for name, kind, path in specs]
        has_age = not any(name == "Age" for name, _, _ in specs)
    if has_age:
        columns.append(_AGE_COLUMN)
    rows = []
    api_version = rt.api_version(version)
    cell = _custom_cell if rt.custom else _cell
    for obj in objs:
        cells: list[Any] = [obj["metadata"]["name"]]
        cells += [cell(obj, path, kind) for _, kind, path in specs]
        if has_age:
            cells.append(age(obj["metadata"].get("creationTimestamp")))
        rows.append({"cells": cells, "object": {**obj, "apiVersion": api_version}})
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if continue_token:
        meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns,
            "rows": rows}
