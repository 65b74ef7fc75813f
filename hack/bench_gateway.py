"""An in-sandbox Gateway controller for benchmarks: it accepts every HTTPRoute generation the moment it is
committed, and does nothing else (no routing table, no traffic).

``hack/bench.py --gateway instant`` uses it to measure the controller with no data plane at all in the sandbox
process (the default is the sandbox's simulated data plane, which accepts a route edit in milliseconds too).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    def changes(self, resources: Any = None) -> Any: ...

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

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

    def __init__(self) -> None:
        self.resubscriptions = 0

    async def run(self, cluster: _Cluster) -> None:
        """Accept routes until cancelled. Only HTTPRoute changes are asked for (the sandbox then spares copying
        the rest); if the stream ends because this fell too far behind, it subscribes again and accepts whatever
        it missed, so a slow moment never leaves routes unaccepted for the rest of a run."""
        while True:
            stream = cluster.changes([(GATEWAY_GROUP, "httproutes")])
            try:
                first = anext(stream)
                # Subscribed from here on (the generator starts on its first step): sweep what came before.
                pending = asyncio.ensure_future(first)
                await asyncio.sleep(0)
                for route in cluster.list(GATEWAY_GROUP, "httproutes"):
                    await self._accept(cluster, route)
                change: _Change
                with contextlib.suppress(StopAsyncIteration):
                    change = await pending
                    await self._on_change(cluster, change)
                    async for change in stream:
                        await self._on_change(cluster, change)
            finally:
                await stream.aclose()
            self.resubscriptions += 1

    async def _on_change(self, cluster: _Cluster, change: _Change) -> None:
        if (change.group, change.plural) == (GATEWAY_GROUP, "httproutes") and change.type != "DELETED":
            await self._accept(cluster, change.object)

    @staticmethod
    async def _accept(cluster: _Cluster, route: dict[str, Any]) -> None:
        meta = route["metadata"]
        if _observed(route) >= int(meta.get("generation") or 1):
            return
        try:
            await cluster.patch_status(GATEWAY_GROUP, "httproutes", meta.get("namespace"), meta["name"],
                                       {"parents": accepted_parents(route)})
        except Exception:  # deleted meanwhile: its DELETED event follows, nothing left to accept
            return
