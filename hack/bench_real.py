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
import re
import ssl
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "cluster"))
from control_plane import (  # noqa: E402
    CONTROLLER_NAMESPACE,
    REPO_ROOT,
    ControlPlane,
    cached_binaries,
    default_crds,
    install_rbac,
)
from traefik_gateway import Traefik, start_gateway  # noqa: E402

GATEWAY_CRDS = REPO_ROOT.parent / "shared" / "gateway-api-v1.6.1"
_SAMPLE = re.compile(r'^flaggerpy_api_requests_total\{([^}]*)\}\s+([0-9.e+]+)$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class RealBenchCluster:
    """The running control plane, Traefik, and the controllers' ServiceAccount kubeconfig."""

    plane: ControlPlane
    traefik: Traefik
    controller_kubeconfig: Path

    @property
    def url(self) -> str:
        """The API server."""
        return self.plane.url

    def ssl_context(self) -> ssl.SSLContext:
        """Trust the cluster CA and authenticate as cluster admin (the bench's own requests)."""
        context = ssl.create_default_context(cafile=str(self.plane.ca))
        pki = self.plane.workdir / "pki"
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def server_pids(self) -> dict[str, int]:
        """The processes whose CPU is the server side of the run."""
        return {p.name: p.popen.pid for p in self.plane.processes
                if p.popen is not None and p.name in ("kube-apiserver", "etcd")}

    def stop(self) -> None:
        """Stop Traefik and the control plane."""
        self.traefik.stop()
        self.plane.stop()


def _start(workdir: Path, namespace: str, canaries: int) -> RealBenchCluster:
    binaries = cached_binaries()
    if binaries is None:
        raise RuntimeError("the control plane is not built: run hack/cluster/build first")
    # Each canary runs a target and a primary pod (and a canary pod during its release): room for all on 4 nodes.
    nodes = 4
    plane = ControlPlane(workdir / "cluster", binaries, nodes=nodes, node_pods=max(110, 3 * canaries // nodes + 50),
                         crds=default_crds(GATEWAY_CRDS))
    plane.start()
    try:
        install_rbac(plane)
        plane.kubectl("create", "namespace", namespace)
        traefik = start_gateway(plane, "public-gateway", "gateway")
        kubeconfig = plane.service_account_kubeconfig(CONTROLLER_NAMESPACE, "flaggerpy",
                                                      workdir / "controller.kubeconfig")
    except BaseException:
        plane.stop()
        raise
    return RealBenchCluster(plane, traefik, kubeconfig)


async def start(workdir: Path, namespace: str, canaries: int) -> RealBenchCluster:
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
