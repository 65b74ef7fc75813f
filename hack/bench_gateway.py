"""An in-sandbox Gateway controller for benchmarks: it accepts every HTTPRoute generation the moment it is
committed, and does nothing else (no routing table, no traffic).

The sandbox's simulated data plane rebuilds its whole routing table on each programming pass, which at a thousand
routes falls behind the controller and would make the benchmark measure the data plane. A real Gateway accepts a
route in milliseconds; this stands in for that.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

GATEWAY_GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "bench.flaggerpy.io/instant-gateway"


class _Change(Protocol):
    type: str
    group: str
    plural: str
    object: dict[str, Any]


class _Cluster(Protocol):
    def changes(self) -> Any: ...

    async def patch_status(self, group: str, plural: str, namespace: str | None, name: str,
                           status: dict[str, Any]) -> dict[str, Any]: ...


def _condition(kind: str, generation: int, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": kind, "message": "accepted by the benchmark gateway",
            "observedGeneration": generation, "lastTransitionTime": now}


def accepted_parents(route: dict[str, Any]) -> list[dict[str, Any]]:
    """``status.parents`` accepting every parentRef of ``route`` at its current generation."""
    generation = int(route["metadata"].get("generation") or 1)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {"parentRef": ref, "controllerName": CONTROLLER_NAME,
         "conditions": [_condition("Accepted", generation, now), _condition("ResolvedRefs", generation, now)]}
        for ref in (route.get("spec") or {}).get("parentRefs") or []
    ]


def _observed(route: dict[str, Any]) -> int:
    for parent in (route.get("status") or {}).get("parents") or []:
        for cond in parent.get("conditions") or []:
            if cond.get("type") == "Accepted":
                return int(cond.get("observedGeneration") or 0)
    return 0


class InstantGateway:
    """Sandbox controller: on every HTTPRoute change whose generation is not yet accepted, accept it."""

    name = "bench-instant-gateway"

    async def run(self, cluster: _Cluster) -> None:
        """Accept routes until cancelled."""
        change: _Change
        async for change in cluster.changes():
            if (change.group, change.plural) != (GATEWAY_GROUP, "httproutes") or change.type == "DELETED":
                continue
            route = change.object
            meta = route["metadata"]
            if _observed(route) >= int(meta.get("generation") or 1):
                continue
            try:
                await cluster.patch_status(GATEWAY_GROUP, "httproutes", meta.get("namespace"), meta["name"],
                                           {"parents": accepted_parents(route)})
            except Exception:  # deleted meanwhile: its DELETED event follows, nothing left to accept
                continue
