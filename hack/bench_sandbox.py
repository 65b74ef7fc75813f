"""The sandbox process of ``hack/bench.py``: the embedded API server with the Gateway API and Flagger CRDs, the
benchmark namespace and a Gateway, a Gateway controller (the simulated data plane, or the instant stand-in of
``bench_gateway``), a watch history long enough that thousands of objects do not push watchers into relists,
and (unless --cel-rules) no CEL evaluation (OpenAPI schema validation stays on).

Prints one JSON line ``{"url": ..., "kubeconfig": ...}`` on stdout when ready; runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from flaggerpy import heap
from flaggerpy.log import configure as configure_logging
from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.gateway.dataplane import DataPlaneSettings, GatewayDataPlane

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import InstantGateway

REPO = Path(__file__).resolve().parents[1]
GATEWAY_CRDS = Path(os.environ.get("FLAGGERPY_GATEWAY_CRDS", REPO.parent / "shared" / "gateway-api-v1.6.1"))
FLAGGER_CRDS = REPO / "deploy" / "crds"
GATEWAY_NAMESPACE = "gateway"
GATEWAY_NAME = "public-gateway"


def crd_documents(gateway_crds: Path) -> list[dict[str, Any]]:
    """Gateway API and Flagger CustomResourceDefinitions."""
    paths = sorted(gateway_crds.glob("*.yaml")) + sorted(FLAGGER_CRDS.glob("*.yaml"))
    docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text())]
    return [doc for doc in docs if doc and doc.get("kind") == "CustomResourceDefinition"]


def gateway() -> dict[str, Any]:
    """One HTTP listener accepting routes from every namespace."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
        "spec": {"gatewayClassName": "sandbox", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}]},
    }


async def serve(args: argparse.Namespace) -> None:
    """Start, install, announce, wait for a signal."""
    settings = DataPlaneSettings() if args.programming_interval is None else DataPlaneSettings(
        min_interval=args.programming_interval)
    gateway_controller: Any = InstantGateway() if args.gateway == "instant" else GatewayDataPlane(settings)
    # The Gateway API CRDs' CEL rules run in a pure-Python interpreter here, where a real API server runs
    # compiled programs: left on, they would put the sandbox's interpreter into the controller's figures.
    sandbox = Sandbox(kubeconfig_path=args.kubeconfig, controllers=[gateway_controller], dataplane=False,
                      ready_delay=args.ready_delay, history_size=args.history, cel_rules=args.cel_rules)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sandbox:
        for doc in crd_documents(args.gateway_crds):
            await sandbox.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        for namespace in (args.namespace, GATEWAY_NAMESPACE):
            await sandbox.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                            "metadata": {"name": namespace}})
        await sandbox.cluster.create("gateway.networking.k8s.io", "gateways", gateway())
        collections = heap.ScheduledCollections()
        collections.start()
        sys.stdout.write(json.dumps({"url": sandbox.url, "kubeconfig": str(sandbox.kubeconfig_path)}) + "\n")
        sys.stdout.flush()
        await stop.wait()
        await collections.stop()


def main() -> int:
    """Parse flags and serve; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--namespace", default="bench", help="namespace of the benchmark's objects")
    parser.add_argument("--ready-delay", type=float, default=0.05, help="seconds until a new revision is ready")
    parser.add_argument("--gateway", choices=["instant", "dataplane"], default="dataplane",
                        help="who accepts HTTPRoutes: the simulated data plane (default), or a stand-in that "
                             "accepts each generation at once and routes nothing")
    parser.add_argument("--programming-interval", type=float, default=None,
                        help="minimum seconds between two data plane programming passes (default the data plane's)")
    parser.add_argument("--history", type=int, default=500_000, help="watch events kept for resuming watches")
    parser.add_argument("--cel-rules", action="store_true", help="evaluate the CRDs' CEL rules (slow)")
    parser.add_argument("--gateway-crds", type=Path, default=GATEWAY_CRDS, help="directory of Gateway API CRDs")
    args = parser.parse_args()
    configure_logging("warning")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
