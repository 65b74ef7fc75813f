"""EndpointSlices (discovery.k8s.io/v1) and Endpoints (core/v1) for Services with a selector.

As kube-controller-manager's endpointslice and endpoints controllers keep them: for every Service with a non-empty
``spec.selector``, the pods of its namespace that match it and have an IP become endpoints.

- EndpointSlices carry the ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by`` labels
  (and the Service's own labels), are owned by the Service (so they go with it), list ports by name with the pod's
  resolved target port (a named ``targetPort`` is looked up among the pod's container ports; pods that resolve a
  port differently land in different slices), and give each endpoint ``ready``/``serving``/``terminating``
  conditions, ``targetRef`` and ``nodeName``. A Service without matching pods keeps one slice without endpoints.
- Endpoints (same name as the Service) list ready addresses and ``notReadyAddresses``; terminating pods are left
  out, as the endpoints controller does.

Changes to pods and Services are batched for ``batch_delay`` seconds, then only the affected Services are synced:
a readiness change reaches the slices well within a second. One slice holds up to ``max_endpoints`` endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import StatusError

log = get_logger("flaggerpy.sandbox.endpoints")

PODS = ("", "pods")
SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")
SLICES = ("discovery.k8s.io", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
# Service labels kube does not copy onto its slices (they would clash with the slice's own).
_RESERVED = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL})


@dataclass(frozen=True)
class EndpointSettings:
    """How the endpoints controllers batch their work."""

    batch_delay: float = 0.01
    """Seconds to collect changes before syncing the Services they affect."""
    max_endpoints: int = 100
    """Endpoints per EndpointSlice (kube-controller-manager's ``--max-endpoints-per-slice`` default)."""


def _condition(pod: dict[str, Any], kind: str) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _selects(selector: dict[str, Any], pod: dict[str, Any]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _target_port(service_port: dict[str, Any], pod: dict[str, Any]) -> int | None:
    """The pod port a Service port sends to: a number as is, a name looked up among the pod's container ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or [] if isinstance(container, dict) else []:
            if (isinstance(port, dict) and port.get("name") == target
                    and port.get("protocol", "TCP") == protocol and isinstance(port.get("containerPort"), int)):
                return int(port["containerPort"])
    return None


def _ports(service: dict[str, Any], pod: dict[str, Any]) -> tuple[tuple[str, int, str, str | None], ...]:
    """(name, port, protocol, appProtocol) per Service port this pod can serve."""
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        if not isinstance(port, dict):
            continue
        number = _target_port(port, pod)
        if number is not None:
            resolved.append((str(port.get("name", "")), number, str(port.get("protocol", "TCP")),
                             port.get("appProtocol")))
    return tuple(resolved)


def _endpoint(pod: dict[str, Any], publish_not_ready: bool) -> dict[str, Any]:
    meta = pod["metadata"]
    terminating = bool(meta.get("deletionTimestamp"))
    serving = _condition(pod, "Ready") or publish_not_ready
    endpoint: dict[str, Any] = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": serving and not terminating, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"],
                      "uid": meta.get("uid", "")},
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


def _slice_ports(ports: tuple[tuple[str, int, str, str | None], ...]) -> list[dict[str, Any]]:
    out = []
    for name, number, protocol, app_protocol in ports:
        entry: dict[str, Any] = {"name": name, "port": number, "protocol": protocol}
        if app_protocol:
            entry["appProtocol"] = app_protocol
        out.append(entry)
    return out


class EndpointsController:
    """An in-sandbox controller (``SandboxController``) writing EndpointSlices and Endpoints for Services."""

    name = "endpoints"

    def __init__(self, settings: EndpointSettings | None = None) -> None:
        self.settings = settings or EndpointSettings()
        self._cluster: Cluster | None = None
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()

    async def run(self, cluster: Cluster) -> None:
        """Follow Services and Pods until cancelled."""
        self._cluster = cluster
        for service in cluster.store.items(SERVICES):
            self._dirty.add((service["metadata"].get("namespace", ""), service["metadata"]["name"]))
        self._wake.set()
        worker = asyncio.create_task(self._work(), name="sandbox-endpoints")
        try:
            async for event in cluster.subscribe_events():
                if event.key == SERVICES:
                    self._dirty.add((event.obj["metadata"].get("namespace", ""), event.obj["metadata"]["name"]))
                    self._wake.set()
                elif event.key == PODS:
                    self._pod_changed(event.obj, event.old)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _pod_changed(self, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        cluster = self._cluster
        assert cluster is not None
        namespace = pod["metadata"].get("namespace", "")
        for service in cluster.store.items(SERVICES, namespace):
            selector = (service.get("spec") or {}).get("selector")
            if isinstance(selector, dict) and selector and (
                    _selects(selector, pod) or (old is not None and _selects(selector, old))):
                self._dirty.add((namespace, service["metadata"]["name"]))
                self._wake.set()

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.settings.batch_delay)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for namespace, name in sorted(dirty):
                try:
                    self._sync(namespace, name)
                except (StatusError, TypeError, ValueError, KeyError, AttributeError) as exc:
                    log.warning("cannot sync endpoints", service=f"{namespace}/{name}", error=str(exc))
                await asyncio.sleep(0)

    def _sync(self, namespace: str, name: str) -> None:
        cluster = self._cluster
        assert cluster is not None
        service = cluster.store.get(SERVICES, namespace, name)
        selector = ((service or {}).get("spec") or {}).get("selector")
        if service is None or service["metadata"].get("deletionTimestamp") or not isinstance(selector, dict) \
                or not selector:
            # Slices go with their Service by ownerReference; Endpoints have no owner and are removed here.
            if service is None and cluster.store.get(ENDPOINTS, namespace, name) is not None:
                cluster.delete_object(cluster.resource(*ENDPOINTS), namespace, name)
            return
        publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
        groups: dict[tuple[tuple[str, int, str, str | None], ...], list[dict[str, Any]]] = {}
        for pod in sorted(cluster.store.items(PODS, namespace), key=lambda p: p["metadata"]["name"]):
            status = pod.get("status") or {}
            if not _selects(selector, pod) or not status.get("podIP") or status.get("phase") in ("Succeeded",
                                                                                                   "Failed"):
                continue
            groups.setdefault(_ports(service, pod), []).append(pod)
        self._sync_slices(service, groups, publish)
        self._sync_endpoints(service, groups, publish)

    def _sync_slices(self, service: dict[str, Any], groups: dict[Any, list[dict[str, Any]]], publish: bool) -> None:
        cluster = self._cluster
        assert cluster is not None
        meta = service["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        wanted: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        for ports, pods in sorted(groups.items()):
            step = self.settings.max_endpoints
            for start in range(0, len(pods), step):
                wanted.append((_slice_ports(ports), [_endpoint(pod, publish) for pod in pods[start:start + step]]))
        if not wanted:
            # kube keeps a placeholder slice, so that clients can tell "no endpoints" from "not synced yet".
            wanted.append(([], []))
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _RESERVED}
        labels.update({SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY})
        owner = [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": meta["uid"], "controller": True,
                  "blockOwnerDeletion": True}]
        rt = cluster.resource(*SLICES)
        existing = sorted(
            (s for s in cluster.store.items(SLICES, namespace)
             if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
             and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY),
            key=lambda s: s["metadata"]["name"])
        for index, (ports, endpoints) in enumerate(wanted):
            body = {"addressType": "IPv4", "ports": ports, "endpoints": endpoints}
            if index < len(existing):
                current = existing[index]
                new = dict(current, **body)
                new["metadata"] = dict(current["metadata"], labels=labels, ownerReferences=owner)
                cluster.commit_update(rt, current, new)
            else:
                cluster.create_object(rt, "v1", namespace, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-{uuid.uuid4().hex[:5]}", "namespace": namespace,
                                 "labels": labels, "ownerReferences": owner},
                    **body})
        for extra in existing[len(wanted):]:
            cluster.delete_object(rt, namespace, extra["metadata"]["name"])

    def _sync_endpoints(self, service: dict[str, Any], groups: dict[Any, list[dict[str, Any]]],
                        publish: bool) -> None:
        cluster = self._cluster
        assert cluster is not None
        meta = service["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        subsets = []
        for ports, pods in sorted(groups.items()):
            ready: list[dict[str, Any]] = []
            not_ready: list[dict[str, Any]] = []
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                address = {"ip": pod["status"]["podIP"],
                           "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"],
                                         "uid": pod["metadata"].get("uid", "")}}
                if (pod.get("spec") or {}).get("nodeName"):
                    address["nodeName"] = pod["spec"]["nodeName"]
                (ready if _condition(pod, "Ready") or publish else not_ready).append(address)
            if not (ready or not_ready) or not ports:
                continue
            subset: dict[str, Any] = {"ports": _slice_ports(ports)}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        labels = dict(meta.get("labels") or {})
        rt = cluster.resource(*ENDPOINTS)
        current = cluster.store.get(ENDPOINTS, namespace, name)
        body: dict[str, Any] = {"subsets": subsets} if subsets else {}
        if current is None:
            cluster.create_object(rt, "v1", namespace, {
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})},
                **body})
            return
        new = {k: v for k, v in current.items() if k != "subsets"}
        new.update(body)
        new["metadata"] = dict(current["metadata"])
        if labels:
            new["metadata"]["labels"] = labels
        cluster.commit_update(rt, current, new)
