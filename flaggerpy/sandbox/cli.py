"""``flaggerpy sandbox``: run the embedded Kubernetes API server until Ctrl-C or SIGTERM.

``flaggerpy sandbox backends --kubeconfig PATH`` runs only the pod backends (real HTTP listeners for the pods of
any cluster whose pods have loopback IPs, e.g. a kube-apiserver with kwok nodes; see ``gateway.backends``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from flaggerpy import heap
from flaggerpy.log import configure as configure_logging
from flaggerpy.sandbox.gateway.backends import BackendSettings, PodBackends
from flaggerpy.sandbox.gateway.kubeclient import KubeconfigError, load_kubeconfig
from flaggerpy.sandbox.sandbox import Sandbox


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser``."""
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="where to write the kubeconfig (default: a file in a temporary directory)")
    parser.add_argument("--ready-delay", type=float, default=0.2,
                        help="seconds until a new Deployment/DaemonSet revision is ready (default: 0.2)")
    parser.add_argument("--no-dataplane", action="store_true", help="do not run the simulated Gateway data plane")
    parser.add_argument("--no-pods", action="store_true",
                        help="no Pods, EndpointSlices or Endpoints for the simulated workloads, and no pod backends "
                             "(a real Gateway such as Traefik needs them)")
    parser.add_argument("--no-backends", action="store_true",
                        help="no real HTTP listeners at the pods' IPs (the pods and EndpointSlices stay)")
    parser.add_argument("--other-gateway-controller", action="append", default=[], metavar="CONTROLLER_NAME",
                        help="a GatewayClass controllerName whose Gateways another implementation programs (the "
                             "sandbox's data plane leaves them and their status alone; traefik.io/gateway-controller "
                             "always is one); repeatable")
    parser.add_argument("--keda", action="store_true",
                        help="install KEDA: the ScaledObject CRD and a simulated operator (default: a cluster without)")
    parser.add_argument("--no-cel", action="store_true",
                        help="skip CRD x-kubernetes-validations rules (faster writes of Gateway API objects)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    commands = parser.add_subparsers(dest="sandbox_command", metavar="{backends}")
    backends = commands.add_parser(
        "backends", help="serve the pods of any cluster (loopback pod IPs) with real HTTP listeners",
        description="List and watch the Pods of the cluster a kubeconfig points at and serve each ready pod with "
                    "loopback IP at podIP:containerPort, shaped by its sandbox.flaggerpy.io/error-rate and /latency "
                    "annotations. Answer counts: GET /sandbox/backends/stats (JSON) or /sandbox/backends/metrics.")
    backends.add_argument("--kubeconfig", dest="backends_kubeconfig", type=Path, required=True,
                          help="the cluster's kubeconfig")
    backends.add_argument("--context", dest="backends_context", default=None,
                          help="kubeconfig context (default: current)")
    backends.add_argument("--namespace", dest="backends_namespace", default=None,
                          help="serve this namespace's pods only (default: all)")
    backends.add_argument("--stats-port", dest="backends_stats_port", type=int, default=0,
                          help="port on 127.0.0.1 for the answer counts (default: any free port, printed)")


async def _serve(args: argparse.Namespace) -> None:
    sandbox = Sandbox(
        port=args.port,
        kubeconfig_path=args.kubeconfig,
        ready_delay=args.ready_delay,
        dataplane=False if args.no_dataplane else None,
        cel_rules=not args.no_cel,
        keda=args.keda,
        pods=not args.no_pods,
        backends=not (args.no_pods or args.no_backends),
        other_gateway_controllers=args.other_gateway_controller,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sandbox:
        collections = heap.ScheduledCollections()
        collections.start()
        sys.stdout.write(
            f"sandbox API server: {sandbox.url}\n"
            f"kubeconfig: {sandbox.kubeconfig_path}\n"
            f"try: KUBECONFIG={sandbox.kubeconfig_path} kubectl get namespaces\n"
            "press Ctrl-C to stop\n"
        )
        sys.stdout.flush()
        await stop.wait()
        await collections.stop()


async def _serve_backends(args: argparse.Namespace) -> None:
    endpoint = load_kubeconfig(args.backends_kubeconfig, args.backends_context)
    backends = PodBackends(BackendSettings(namespace=args.backends_namespace))
    app = web.Application()
    app.add_routes(backends.routes())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.backends_stats_port))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(backends.run(endpoint))
    sys.stdout.write(f"pod backends for {endpoint.server}\nanswer counts: http://127.0.0.1:{port}/sandbox/backends/stats"
                     "\npress Ctrl-C to stop\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()


def _run_backends(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve_backends(args))
    except KubeconfigError as exc:
        sys.stderr.write(f"flaggerpy sandbox backends: --kubeconfig: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"flaggerpy sandbox backends: --stats-port: {exc.strerror or exc}\n")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Start the sandbox (or, with ``backends``, only the pod backends) and block until interrupted."""
    if args.ready_delay < 0:
        sys.stderr.write("flaggerpy sandbox: --ready-delay: must be >= 0\n")
        return 2
    if not 0 <= args.port <= 65535:
        sys.stderr.write("flaggerpy sandbox: --port: must be between 0 and 65535\n")
        return 2
    try:
        configure_logging(args.log_level)
    except ValueError as exc:
        sys.stderr.write(f"flaggerpy sandbox: {exc}\n")
        return 2
    if args.sandbox_command == "backends":
        return _run_backends(args)
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        sys.stderr.write(f"flaggerpy sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}\n")
        return 1
    sys.stdout.write("sandbox stopped\n")
    return 0
