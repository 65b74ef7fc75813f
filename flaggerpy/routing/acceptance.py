"""Has every Gateway the route names accepted its current generation? Read from ``status.parents``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.routing.normalize import GATEWAY_GROUP


def _parent_key(ref: Mapping[str, Any], route_namespace: str) -> tuple[str, str, str, str, str, int]:
    return (
        str(ref.get("group") if ref.get("group") is not None else GATEWAY_GROUP),
        str(ref.get("kind") or "Gateway"),
        str(ref.get("namespace") or route_namespace),
        str(ref.get("name") or ""),
        str(ref.get("sectionName") or ""),
        int(ref.get("port") or 0),
    )


def _describe_parent(ref: Mapping[str, Any], route_namespace: str) -> str:
    _, kind, namespace, name, section, port = _parent_key(ref, route_namespace)
    where = f"{kind} {namespace}/{name}"
    if section:
        where += f" (listener {section})"
    elif port:
        where += f" (port {port})"
    return where


def route_acceptance(route: Mapping[str, Any]) -> tuple[bool, str]:
    """(True, "") when every parentRef has ``Accepted=True`` observed at the route's current generation.

    Otherwise (False, reason) where the reason names the first parent still missing, e.g. "waiting for Gateway
    istio/public-gateway to accept HTTPRoute test/podinfo".
    """
    meta = route.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    generation = int(meta.get("generation") or 0)
    what = f"{route.get('kind', 'HTTPRoute')} {namespace}/{meta.get('name', '')}"
    parents = (route.get("spec") or {}).get("parentRefs") or []
    if not parents:
        return False, f"{what} has no parentRefs"
    statuses = {
        _parent_key(entry.get("parentRef") or {}, namespace): entry
        for entry in (route.get("status") or {}).get("parents") or []
    }
    for ref in parents:
        parent = _describe_parent(ref, namespace)
        entry = statuses.get(_parent_key(ref, namespace))
        conditions = {c.get("type"): c for c in (entry or {}).get("conditions") or []}
        accepted = conditions.get("Accepted")
        if accepted is None:
            return False, f"waiting for {parent} to accept {what}"
        observed = int(accepted.get("observedGeneration") or 0)
        if observed < generation:
            return False, f"waiting for {parent} to accept {what} (generation {generation}, seen {observed})"
        if accepted.get("status") != "True":
            reason = accepted.get("reason") or "NotAccepted"
            message = accepted.get("message") or ""
            return False, f"{parent} did not accept {what}: {reason}" + (f": {message}" if message else "")
    return True, ""
