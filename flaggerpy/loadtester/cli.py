"""``flaggerpy loadtester``: a webhook server compatible with flagger-loadtester."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

from aiohttp import web

from flaggerpy import log
from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.loadtester.durations import parse_duration
from flaggerpy.loadtester.server import create_app

_log = log.get_logger("flaggerpy.loadtester")


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the load tester's flags (flagger-loadtester's names)."""
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--timeout", default="1h", help="limit for every command, e.g. 30s, 10m, 1h (default 1h)")
    parser.add_argument(
        "--namespace-regexp",
        default="",
        help="only accept payloads from canaries in namespaces matching this regular expression",
    )
    parser.add_argument(
        "--log-cmd-output",
        action="store_true",
        help="log the output of background commands that do not set metadata.logCmdOutput",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")


def _config_from(args: argparse.Namespace) -> LoadtesterConfig:
    """Validate the flags; raises ValueError naming the flag."""
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise ValueError(f"--timeout: {exc}") from None
    if timeout <= 0:
        raise ValueError(f"--timeout: must be > 0, got {args.timeout!r}")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port: must be between 1 and 65535, got {args.port}")
    pattern = None
    if args.namespace_regexp:
        try:
            pattern = re.compile(args.namespace_regexp)
        except re.error as exc:
            raise ValueError(
                f"--namespace-regexp: {args.namespace_regexp!r} is not a regular expression ({exc})"
            ) from None
    return LoadtesterConfig(
        host=args.host,
        port=args.port,
        timeout=timeout,
        namespace_regexp=pattern,
        log_cmd_output=args.log_cmd_output,
    )


async def serve(config: LoadtesterConfig, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; then stop accepting requests and kill every running command."""
    runner = web.AppRunner(create_app(config), shutdown_timeout=config.shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        _log.info("load tester listening", host=config.host, port=config.port, timeout=config.timeout)
        await stop.wait()
        _log.info("load tester stopping")
    finally:
        await runner.cleanup()


async def _main(config: LoadtesterConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop)


def run(args: argparse.Namespace) -> int:
    """Run the load tester until SIGTERM or SIGINT; returns the exit code."""
    try:
        config = _config_from(args)
        log.configure(args.log_level)
    except ValueError as exc:
        sys.stderr.write(f"flaggerpy loadtester: {exc}\n")
        return 2
    try:
        asyncio.run(_main(config))
    except OSError as exc:
        sys.stderr.write(f"flaggerpy loadtester: cannot listen on {config.host}:{config.port}: {exc.strerror}\n")
        return 1
    return 0
