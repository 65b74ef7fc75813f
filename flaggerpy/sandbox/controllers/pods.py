"""Pods for the simulated workloads, as a ReplicaSet/DaemonSet controller, the scheduler and a kubelet make them.

The workload simulator (``workloads``) decides how many replicas are ready; this controller gives each replica a Pod
object that says the same: one Pod per desired replica of the current pod template (labelled ``pod-template-hash``,
or ``controller-revision-hash`` for a DaemonSet), Running, with an IP from a loopback range (a /20 of 127.244.0.0/14 by
default: all of 127.0.0.0/8 is loopback on Linux, so a real listener can bind it) and a ``Ready`` condition that
follows the workload's ready count. While a new template rolls out, the previous template's ready pods keep
serving, as an old ReplicaSet's do. A pod that is no longer wanted terminates gracefully: it gets a
``deletionTimestamp`` (and loses ``ready`` in its EndpointSlices while still ``serving``), then goes after
``termination_delay``.

Differences from a cluster: pods are owned by their Deployment directly (the sandbox has no ReplicaSet objects),
and a pod deleted by hand is recreated at once with a new name and IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import ipaddress
import json
import socket
import sys
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.jsonio import object_field
from flaggerpy.sandbox.clock import now

log = get_logger("flaggerpy.sandbox.pods")

PODS = ("", "pods")
DEPLOYMENTS = ("apps", "deployments")
DAEMONSETS = ("apps", "daemonsets")
WORKLOADS = frozenset({DEPLOYMENTS, DAEMONSETS})
NODE_NAME = "sandbox-node-0"
_OWNER_KIND = {DEPLOYMENTS: "Deployment", DAEMONSETS: "DaemonSet"}


@dataclass(frozen=True)
class PodSettings:
    """How simulated pods are addressed and how long they take to go."""

    pod_cidr: str | None = None
    """Pod IPs are handed out from this range; it must be loopback for real pod listeners to bind them. Default:
    the first free /20 of 127.244.0.0/14 (then of 127.224.0.0/11), claimed for the sandbox's lifetime, so that
    sandboxes running side by side on one machine never hand out the same pod IP."""
    termination_delay: float = 0.2
    """Seconds a terminating pod keeps its IP and keeps serving before it is removed (its graceful shutdown)."""


_RANGES = ("127.244.0.0/14", "127.224.0.0/11")
_BLOCK = 20


class RangeClaim:
    """A pod IP range held by this process: an abstract unix socket named after it (Linux), released on close or
    when the process ends, so concurrent sandboxes (other test processes, other users' sandboxes) pick others."""

    def __init__(self, wanted: str | None) -> None:
        self._socket: socket.socket | None = None
        if wanted is not None:
            self.cidr = wanted
            self._take(wanted)
            return
        for cidr in (str(block) for whole in _RANGES for block in ipaddress.ip_network(whole).subnets(
                new_prefix=_BLOCK)):
            if self._take(cidr):
                self.cidr = cidr
                return
        raise RuntimeError(f"no free pod IP range in {', '.join(_RANGES)}")

    def _take(self, cidr: str) -> bool:
        if not hasattr(socket, "AF_UNIX") or sys.platform != "linux":
            return True
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0flaggerpy-sandbox-pods-{cidr}")
        except OSError:
            claim.close()
            return False
        self._socket = claim
        return True

    def close(self) -> None:
        """Release the range."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class PodIPs:
    """Hands out pod IPs from a range, then reuses released ones (never the network or broadcast address)."""

    def __init__(self, cidr: str) -> None:
        self._network = ipaddress.ip_network(cidr)
        self._next = 1
        # Released addresses are reused oldest first, so an address stays unused as long as possible (a Gateway
        # whose endpoints lag behind then dials nothing rather than another pod).
        self._free: deque[str] = deque()
        self._used: set[str] = set()

    def allocate(self) -> str:
        """A free address (never used ones first); ``RuntimeError`` when the range is exhausted."""
        last = self._network.num_addresses - 1
        while self._next < last:
            address = str(self._network.network_address + self._next)
            self._next += 1
            if address not in self._used:
                self._used.add(address)
                return address
        if not self._free:
            raise RuntimeError(f"pod IP range {self._network} is exhausted")
        address = self._free.popleft()
        self._used.add(address)
        return address

    def claim(self, address: str) -> None:
        """Mark an address in use (a pod that existed before this allocator started)."""
        self._used.add(address)

    def release(self, address: str) -> None:
        """Return an address to the pool."""
        if address in self._used:
            self._used.discard(address)
            self._free.append(address)


def template_hash(template: Any) -> str:
    """A short stable hash of a pod template, like the ``pod-template-hash`` label kube-controller-manager sets."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:10]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Want:
    """What a workload's status asks of its pods: per template hash, how many pods and how many of them ready."""

    current: str
    desired: int
    current_ready: int
    old_ready: int


def want(key: tuple[str, str], workload: dict[str, Any]) -> Want | None:
    """The pods a workload's last written status describes; None until its current generation is observed."""
    spec = object_field(workload, "spec")
    status = object_field(workload, "status")
    if status.get("observedGeneration") != workload["metadata"].get("generation", 1):
        return None
    current = template_hash(spec.get("template"))
    if key == DAEMONSETS:
        desired, ready, updated = (_int(status.get("desiredNumberScheduled")), _int(status.get("numberReady")),
                                   _int(status.get("updatedNumberScheduled")))
    else:
        replicas = spec.get("replicas", 1)
        desired = replicas if isinstance(replicas, int) and replicas >= 0 else 1
        ready, updated = _int(status.get("readyReplicas")), _int(status.get("updatedReplicas"))
    ready = min(ready, desired)
    if updated >= desired:
        # The current template is rolled out (or a scale of it is under way): its pods are the ready ones.
        return Want(current, desired, ready, 0)
    # A new template is rolling out: the previous template's pods that were ready keep serving meanwhile.
    return Want(current, desired, 0, ready)


class PodController:
    """An in-sandbox controller (``SandboxController``) that keeps Pods in line with Deployments and DaemonSets."""

    name = "pods"

    def __init__(self, settings: PodSettings | None = None) -> None:
        self.settings = settings or PodSettings()
        self.claim: RangeClaim | None = None
        self.ips = PodIPs("127.0.0.0/8")  # replaced by the claimed range when the controller runs
        self._cluster: Cluster | None = None
        self._dirty: set[tuple[tuple[str, str], str, str]] = set()
        self._wake = asyncio.Event()
        self._removals: set[asyncio.TimerHandle] = set()

    async def run(self, cluster: Cluster) -> None:
        """Follow workloads and pods until cancelled."""
        self._cluster = cluster
        self.claim = RangeClaim(self.settings.pod_cidr)
        self.ips = PodIPs(self.claim.cidr)
        for pod in cluster.store.items(PODS):
            ip = (pod.get("status") or {}).get("podIP")
            if isinstance(ip, str):
                self.ips.claim(ip)
        for key in WORKLOADS:
            for obj in cluster.store.items(key):
                self._mark(key, obj)
        worker = asyncio.create_task(self._work(), name="sandbox-pods")
        try:
            async for event in cluster.subscribe_events():
                if event.key in WORKLOADS:
                    self._mark(event.key, event.obj)
                elif event.key == PODS:
                    self._pod_event(event.type, event.obj)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            for timer in self._removals:
                timer.cancel()
            self.claim.close()
            self.claim = None

    def _mark(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        self._dirty.add((key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        self._wake.set()

    def _pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED":
            ip = (pod.get("status") or {}).get("podIP")
            if isinstance(ip, str):
                self.ips.release(ip)
        owner = self._owner(pod)
        if owner is not None and (kind == "DELETED" or pod["metadata"].get("deletionTimestamp")):
            # A pod deleted by hand (or by its namespace going) is replaced, as a ReplicaSet would.
            self._dirty.add(owner)
            self._wake.set()

    def _owner(self, pod: dict[str, Any]) -> tuple[tuple[str, str], str, str] | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in ("Deployment", "DaemonSet"):
                key = DEPLOYMENTS if ref["kind"] == "Deployment" else DAEMONSETS
                return (key, pod["metadata"].get("namespace", ""), str(ref.get("name")))
        return None

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for ident in sorted(dirty):
                try:
                    self._sync(*ident)
                except (StatusError, TypeError, ValueError, KeyError, RuntimeError) as exc:
                    log.warning("cannot sync pods", workload=f"{ident[1]}/{ident[2]}", error=str(exc))
                await asyncio.sleep(0)

    def _pods_of(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        assert self._cluster is not None
        return [pod for pod in self._cluster.store.items(PODS, namespace)
                if any(ref.get("uid") == uid and ref.get("controller")
                       for ref in pod["metadata"].get("ownerReferences") or [])]

    def _sync(self, key: tuple[str, str], namespace: str, name: str) -> None:
        cluster = self._cluster
        assert cluster is not None
        workload = cluster.store.get(key, namespace, name)
        if workload is None or workload["metadata"].get("deletionTimestamp"):
            return  # its pods go with it (garbage collection by ownerReferences)
        wanted = want(key, workload)
        if wanted is None:
            return
        hash_label = "controller-revision-hash" if key == DAEMONSETS else "pod-template-hash"
        live = [pod for pod in self._pods_of(namespace, workload["metadata"]["uid"])
                if not pod["metadata"].get("deletionTimestamp")]
        current = [pod for pod in live if (pod["metadata"].get("labels") or {}).get(hash_label) == wanted.current]
        old = [pod for pod in live if pod not in current]
        # Oldest first, so that the same pods stay ready from one sync to the next.
        current.sort(key=lambda pod: (pod["metadata"].get("creationTimestamp", ""), pod["metadata"]["name"]))
        old.sort(key=lambda pod: (not _is_ready(pod), pod["metadata"].get("creationTimestamp", ""),
                                  pod["metadata"]["name"]))
        for pod in current[wanted.desired:]:
            self._terminate(pod)
        current = current[:wanted.desired]
        while len(current) < wanted.desired:
            current.append(self._create(key, workload, hash_label, wanted.current))
        for index, pod in enumerate(current):
            self._set_ready(pod, index < wanted.current_ready)
        for pod in old[wanted.old_ready:]:
            self._terminate(pod)

    def _create(self, key: tuple[str, str], workload: dict[str, Any], hash_label: str,
                pod_hash: str) -> dict[str, Any]:
        cluster = self._cluster
        assert cluster is not None
        meta = workload["metadata"]
        template = (workload.get("spec") or {}).get("template") or {}
        template_meta = object_field(template, "metadata")
        suffix = uuid.uuid4().hex[:5]
        name = f"{meta['name']}-{pod_hash}-{suffix}" if key == DEPLOYMENTS else f"{meta['name']}-{suffix}"
        labels = dict(template_meta.get("labels") or {})
        labels[hash_label] = pod_hash
        spec = copy.deepcopy(object_field(template, "spec"))
        spec.setdefault("nodeName", NODE_NAME)
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": meta.get("namespace", ""),
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": _OWNER_KIND[key], "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }
        if template_meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(template_meta["annotations"])
        rt = cluster.resource(*PODS)
        created = cluster.create_object(rt, "v1", meta.get("namespace", ""), pod)
        ip = self.ips.allocate()
        try:
            return cluster.commit_update(rt, created, dict(created, status=_status(created, ip, False)))
        except StatusError:
            self.ips.release(ip)
            raise

    def _set_ready(self, pod: dict[str, Any], ready: bool) -> None:
        if _is_ready(pod) == ready:
            return
        cluster = self._cluster
        assert cluster is not None
        ip = (pod.get("status") or {}).get("podIP") or self.ips.allocate()
        cluster.commit_update(cluster.resource(*PODS), pod, dict(pod, status=_status(pod, ip, ready)))

    def _terminate(self, pod: dict[str, Any]) -> None:
        """Begin a graceful deletion: the pod stays (serving, not ready) for ``termination_delay``, then goes."""
        cluster = self._cluster
        assert cluster is not None
        marked = cluster.begin_graceful_deletion(cluster.resource(*PODS), pod, self.settings.termination_delay)
        namespace, name = marked["metadata"].get("namespace", ""), marked["metadata"]["name"]
        uid = marked["metadata"]["uid"]
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def remove() -> None:
            self._removals.difference_update(holder)
            current = cluster.store.get(PODS, namespace, name)
            if current is None or current["metadata"].get("uid") != uid:
                return
            try:
                cluster.delete_object(cluster.resource(*PODS), namespace, name)
            except StatusError as exc:
                log.warning("cannot remove terminated pod", pod=f"{namespace}/{name}", error=str(exc))

        holder.append(loop.call_later(self.settings.termination_delay, remove))
        self._removals.update(holder)


def _is_ready(pod: dict[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _status(pod: dict[str, Any], ip: str, ready: bool) -> dict[str, Any]:
    """A Running pod's status as a kubelet reports it, ready or not."""
    stamp = now()
    previous = pod.get("status") or {}
    started = previous.get("startTime") or stamp
    flag = "True" if ready else "False"
    containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "qosClass": "BestEffort",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
        ],
        "containerStatuses": [
            {"name": str(c.get("name", "")), "image": str(c.get("image", "")), "ready": ready, "started": True,
             "restartCount": 0, "state": {"running": {"startedAt": started}}}
            for c in containers
        ],
    }
