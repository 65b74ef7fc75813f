"""``flaggerpy sandbox``: run the embedded Kubernetes API server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from flaggerpy import heap
from flaggerpy.log import configure as configure_logging
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
                        help="no Pods, EndpointSlices or Endpoints for the simulated workloads (a real Gateway such as "
                             "Traefik needs them)")
    parser.add_argument("--keda", action="store_true",
                        help="install KEDA: the ScaledObject CRD and a simulated operator (default: a cluster without)")
    parser.add_argument("--no-cel", action="store_true",
                        help="skip CRD x-kubernetes-validations rules (faster writes of Gateway API objects)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")


async def _serve(args: argparse.Namespace) -> None:
    sandbox = Sandbox(
        port=args.port,
        kubeconfig_path=args.kubeconfig,
        ready_delay=args.ready_delay,
        dataplane=False if args.no_dataplane else None,
        cel_rules=not args.no_cel,
        keda=args.keda,
        pods=not args.no_pods,
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


def run(args: argparse.Namespace) -> int:
    """Start the sandbox and block until interrupted; returns the exit code."""
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
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        sys.stderr.write(f"flaggerpy sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}\n")
        return 1
    sys.stdout.write("sandbox stopped\n")
    return 0
