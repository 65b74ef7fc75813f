"""``flaggerpy dashboard [--kubeconfig ...] [--context ...] [-n NS ...] [--port 3100] [--read-only]``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from flaggerpy.ctl import common
from flaggerpy.dashboard.server import DashboardSettings, serve

DEFAULT_PORT = 3100


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``flaggerpy dashboard``."""
    common.add_cluster_args(parser, namespaced=False)
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NS", dest="namespaces",
                        help="a namespace to show when you may not list canaries in all namespaces (repeatable; "
                             "the context's namespace is always tried)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: a free port)")
    parser.add_argument("--read-only", action="store_true", help="hide promote/abort/retry/pause/resume")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``flaggerpy dashboard``: serve until Ctrl-C."""
    if not 0 <= args.port <= 65535:
        return common.refuse([f"--port: must be between 0 and 65535, not {args.port}"])
    problems = [p for ns in args.namespaces
                for p in common.usage_problems(argparse.Namespace(namespace=ns))]
    if problems:
        return common.refuse(problems)
    settings = DashboardSettings(kubeconfig=args.kubeconfig, context=args.context, port=args.port,
                                 read_only=args.read_only, namespaces=tuple(args.namespaces))

    async def main() -> int:
        try:
            async with serve(settings) as running:
                mode = " (read-only)" if settings.read_only else ""
                sys.stdout.write(f"flaggerpy dashboard{mode}: {running.url}/\n")
                sys.stdout.flush()
                await asyncio.Event().wait()
        except OSError as exc:
            raise common.CtlError(f"--port {settings.port}: cannot listen on 127.0.0.1: {exc.strerror or exc}") \
                from None
        return common.EXIT_OK

    return common.run_async(main, args=args)
