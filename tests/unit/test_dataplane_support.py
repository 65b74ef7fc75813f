"""An in-memory stand-in for the sandbox ``Cluster`` and builders of Gateway API objects for data plane tests.

It holds no tests itself; it lets unit tests drive the data plane without the sandbox server.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flaggerpy.sandbox.gateway.dataplane import DataPlaneSettings, GatewayDataPlane

GW = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class FakeChange:
    type: str
    group: str
    plural: str
    object: dict


class FakeCluster:
    """Objects by (group, plural) → (namespace, name); generation bumps on spec edits; counts status writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.status_writes: list[tuple[str, str, str]] = []
        # How many of the next status writes fail (as a conflict or an API server error would).
        self.failing_status_writes = 0
        self._queues: list[asyncio.Queue[FakeChange | None]] = []
        self._rv = itertools.count(1)
        self._age = itertools.count(1)

    def _emit(self, kind: str, group: str, plural: str, obj: dict) -> None:
        for queue in self._queues:
            queue.put_nowait(FakeChange(kind, group, plural, copy.deepcopy(obj)))

    def apply(self, group: str, plural: str, obj: dict) -> dict:
        """Create or replace ``obj``; status is kept from the stored copy like a main-resource update."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        bucket = self.objects.setdefault((group, plural), {})
        old = bucket.get(key)
        if old is None:
            meta["generation"] = 1
            meta["creationTimestamp"] = meta.get("creationTimestamp") or f"2026-01-01T00:00:{next(self._age):02d}Z"
        else:
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            changed = old.get("spec") != obj.get("spec")
            meta["generation"] = old["metadata"]["generation"] + (1 if changed else 0)
            if "status" in old:
                obj["status"] = old["status"]
        meta["resourceVersion"] = str(next(self._rv))
        bucket[key] = obj
        self._emit("ADDED" if old is None else "MODIFIED", group, plural, obj)
        return copy.deepcopy(obj)

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        obj = self.objects.get((group, plural), {}).pop((namespace, name))
        self._emit("DELETED", group, plural, obj)

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict]:
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self.objects.get((group, plural), {}).items())
            if namespace in (None, ns)
        ]

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict | None:
        obj = self.objects.get((group, plural), {}).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def end_streams(self) -> None:
        """End every change stream, as the sandbox does to a reader that fell too far behind."""
        for queue in self._queues:
            queue.put_nowait(None)

    async def changes(self, resources: Iterable[tuple[str, str]] | None = None) -> AsyncIterator[FakeChange]:
        wanted = None if resources is None else set(resources)
        queue: asyncio.Queue[FakeChange | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                change = await queue.get()
                if change is None:
                    return
                if wanted is None or (change.group, change.plural) in wanted:
                    yield change
        finally:
            self._queues.remove(queue)

    async def patch_status(self, group: str, plural: str, namespace: str | None, name: str, status: dict) -> dict:
        obj = self.objects[(group, plural)][(namespace or "", name)]
        if self.failing_status_writes:
            self.failing_status_writes -= 1
            raise RuntimeError("injected status write failure")
        obj["status"] = {**(obj.get("status") or {}), **copy.deepcopy(status)}
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.status_writes.append((plural, namespace or "", name))
        self._emit("MODIFIED", group, plural, obj)
        return copy.deepcopy(obj)

    async def patch(self, group: str, plural: str, namespace: str | None, name: str, patch: dict) -> dict:
        obj = self.objects[(group, plural)][(namespace or "", name)]
        annotations = patch.get("metadata", {}).get("annotations", {})
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        self._emit("MODIFIED", group, plural, obj)
        return copy.deepcopy(obj)


def gateway(name: str = "gw", namespace: str = "infra", listeners: list[dict] | None = None) -> dict:
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": "sandbox",
            "listeners": listeners
            if listeners is not None
            else [{"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }


def service(name: str, namespace: str = "test", app: str | None = None, port: int = 9898) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": app or name}, "ports": [{"port": port}]},
    }


def deployment(
    name: str,
    namespace: str = "test",
    ready: int = 1,
    annotations: dict[str, str] | None = None,
    app: str | None = None,
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app or name}},
            "template": {"metadata": {"labels": {"app": app or name}, "annotations": annotations or {}}},
        },
        "status": {"readyReplicas": ready, "replicas": 1},
    }


def backend(name: str, weight: int | None = None, port: int = 9898, **extra: Any) -> dict:
    ref: dict[str, Any] = {"name": name, "port": port, **extra}
    if weight is not None:
        ref["weight"] = weight
    return ref


def httproute(
    name: str = "podinfo",
    namespace: str = "test",
    rules: list[dict] | None = None,
    hostnames: list[str] | None = None,
    parent: dict | None = None,
) -> dict:
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [parent or {"name": "gw", "namespace": "infra"}],
            "hostnames": hostnames if hostnames is not None else ["app.example.com"],
            "rules": rules if rules is not None else [{"backendRefs": [backend("podinfo-primary", 100)]}],
        },
    }


def canary_world(cluster: FakeCluster, error_rate: str | None = None, latency: str | None = None) -> None:
    """A Gateway, podinfo-primary/-canary Deployments and Services in namespace test."""
    cluster.apply(GW, "gateways", gateway())
    annotations = {}
    if error_rate is not None:
        annotations["sandbox.flaggerpy.io/error-rate"] = error_rate
    if latency is not None:
        annotations["sandbox.flaggerpy.io/latency"] = latency
    for name in ("podinfo-primary", "podinfo-canary"):
        cluster.apply("", "services", service(name))
        cluster.apply(
            "apps", "deployments", deployment(name, annotations=annotations if name.endswith("canary") else None)
        )


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if result:
                return result
            await asyncio.sleep(0.002)


class Running:
    """A data plane running against a FakeCluster inside a test."""

    def __init__(self, cluster: FakeCluster, settings: DataPlaneSettings) -> None:
        self.cluster = cluster
        self.plane = GatewayDataPlane(settings)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> GatewayDataPlane:
        self.task = asyncio.create_task(self.plane.run(self.cluster))
        await asyncio.sleep(0)
        await settle(self.plane)
        return self.plane

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def settle(plane: GatewayDataPlane) -> None:
    """Let pending change events reach the data plane, then wait until they are programmed."""
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.wait_for(plane.wait_programmed(), 5)

