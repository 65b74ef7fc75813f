"""``hack/bench.py --cluster real``: the benchmark's cluster is a real control plane from hack/cluster (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok) with Traefik accepting the routes, instead of the
sandbox process.

What the sandbox measures itself has other sources here: the controller's API calls come from its own
``flaggerpy_api_requests_total`` (the API server's metrics do not say who asked), the server's CPU is kube-apiserver's
and etcd's, and the controllers run with their ServiceAccount token under deploy/rbac, leader election in
flaggerpy-system where deploy/rbac grants the Lease.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "cluster"))
from control_plane import REPO_ROOT, ControlPlane, cached_binaries, default_crds  # noqa: E402
from traefik_gateway import GatewayCluster, prepare  # noqa: E402

GATEWAY_CRDS = Path(os.environ.get("FLAGGERPY_GATEWAY_CRDS", REPO_ROOT.parent / "shared" / "gateway-api-v1.6.1"))
_SAMPLE = re.compile(r'^flaggerpy_api_requests_total\{([^}]*)\}\s+([0-9.e+]+)$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def server_pids(cluster: GatewayCluster) -> dict[str, int]:
    """The processes whose CPU is the server side of the run."""
    return {p.name: p.popen.pid for p in cluster.plane.processes
            if p.popen is not None and p.name in ("kube-apiserver", "etcd")}


def _start(workdir: Path, namespace: str, canaries: int) -> GatewayCluster:
    binaries = cached_binaries()
    if binaries is None:
        raise RuntimeError("the control plane is not built: run hack/cluster/build first")
    # Each canary runs a target and a primary pod (and a canary pod during its release): room for all on 4 nodes.
    nodes = 4
    plane = ControlPlane(workdir / "cluster", binaries, nodes=nodes, node_pods=max(110, 3 * canaries // nodes + 50),
                         crds=default_crds(GATEWAY_CRDS))
    plane.start()
    return prepare(plane, namespace)


async def start(workdir: Path, namespace: str, canaries: int) -> GatewayCluster:
    """Start the cluster (in a thread: starting it blocks for seconds)."""
    return await asyncio.to_thread(_start, workdir, namespace, canaries)


async def controller_requests(session: aiohttp.ClientSession, ports: list[int]) -> dict[str, dict[str, int]]:
    """Every controller replica's API requests so far, by resource and verb (summed over replicas)."""
    calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for port in ports:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics",
                                   timeout=aiohttp.ClientTimeout(total=10)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            continue  # a killed replica's requests are gone with it
        for labels, value in _SAMPLE.findall(text):
            fields = dict(_LABEL.findall(labels))
            calls[fields.get("resource", "")][fields.get("verb", "")] += int(float(value))
    return {resource: dict(verbs) for resource, verbs in calls.items()}


def difference(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``after - before`` per resource and verb, leaving out zeros."""
    out: dict[str, dict[str, int]] = {}
    for resource, verbs in after.items():
        delta = {verb: n - before.get(resource, {}).get(verb, 0) for verb, n in verbs.items()}
        delta = {verb: n for verb, n in delta.items() if n > 0}
        if delta:
            out[resource] = delta
    return out
