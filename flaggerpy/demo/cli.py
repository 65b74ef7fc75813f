"""``flaggerpy demo``: sandbox + controller + podinfo + traffic, then a release shown live until it ends.

Exit code 0 when the release ends as expected (Succeeded, or Failed and rolled back with ``--faulty``), 1 when it
does not or the demo cannot run, 2 for bad flags, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys

from flaggerpy import log as logconf
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary
from flaggerpy.demo import manifests
from flaggerpy.demo.errors import DemoError
from flaggerpy.demo.manifests import Timing
from flaggerpy.demo.prometheus import PrometheusError
from flaggerpy.demo.session import Demo, Options
from flaggerpy.demo.view import DemoState, LiveReporter, PlainReporter, Reporter
from flaggerpy.kube.errors import ApiError

PROMETHEUS_CHOICES = ("auto", "real", "sandbox")
GATEWAY_CHOICES = ("sandbox", "traefik")


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the flags of ``flaggerpy demo``."""
    add = parser.add_argument
    add("--faulty", action="store_true",
        help="roll out a version whose pods fail 30%% of requests and watch the automatic rollback")
    add("--prometheus", choices=PROMETHEUS_CHOICES, default="auto",
        help="metrics backend: a real Prometheus (needs the binary), the sandbox's own PromQL, or auto "
             "(real when 'prometheus' is on PATH)")
    add("--gateway", choices=GATEWAY_CHOICES, default="sandbox",
        help="the Gateway carrying the release: the sandbox's simulated one, or the real Traefik (needs its "
             "binary, pip install 'flaggerpy[traefik]', and a real Prometheus)")
    add("--keep", action="store_true", help="leave the sandbox running at the end (Ctrl-C to stop)")
    add("--rps", type=float, default=80.0, help="synthetic requests per second to the Gateway (default 80)")
    add("--interval", default=Timing.interval, help=f"analysis interval (default {Timing.interval})")
    add("--threshold", type=int, default=Timing.threshold,
        help=f"failed checks before rollback (default {Timing.threshold})")
    add("--timeout", type=float, default=120.0, help="seconds before the demo gives up waiting (default 120)")
    add("--gateway-crds", default=None,
        help="directory of the official Gateway API CRDs (default: $FLAGGERPY_GATEWAY_CRDS, a checkout's "
             "shared/ directory, else schemaless built-ins)")
    add("--plain", action="store_true", help="print one line per change even on a terminal")
    add("--log-level", default="error", help="controller log level (default error: the Events tell the story)")
    add("--metrics-port", type=int, default=0,
        help="port on 127.0.0.1 of the controller's /metrics, /healthz and /readyz (default: a free port, printed)")
    add("--dashboard-port", type=int, default=0,
        help="port on 127.0.0.1 of the web dashboard of the release (default: a free port, printed)")


def _problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if args.gateway == "traefik" and shutil.which("traefik") is None:
        problems.append("--gateway traefik: no 'traefik' executable on PATH; install it with "
                        "pip install 'flaggerpy[traefik]' (or use --gateway sandbox)")
    if not 0 < args.rps <= 5000:
        problems.append(f"--rps: must be > 0 and <= 5000, not {args.rps:g}")
    if args.threshold < 1:
        problems.append(f"--threshold: must be >= 1, not {args.threshold}")
    if not args.timeout > 0:
        problems.append(f"--timeout: must be > 0, not {args.timeout:g}")
    if not 0 <= args.metrics_port <= 65535:
        problems.append(f"--metrics-port: must be between 0 (a free port) and 65535, not {args.metrics_port}")
    if not 0 <= args.dashboard_port <= 65535:
        problems.append(f"--dashboard-port: must be between 0 (a free port) and 65535, not {args.dashboard_port}")
    return problems


def opening_line(options: Options) -> str:
    """What is about to happen, not its result: the release, its steps and what decides its fate."""
    analysis = manifests.canary("http://127.0.0.1", options.timing)["spec"]["analysis"]
    plan = (f"in {analysis['stepWeight']}% steps up to {analysis['maxWeight']}% every {analysis['interval']}, "
            f"rolled back after {analysis['threshold']} failed checks")
    if options.faulty:
        return (f"flaggerpy demo: releasing {manifests.APP} {manifests.NEXT_VERSION}, which fails 30% of its "
                f"requests, as a canary {plan}; expect a rollback")
    return f"flaggerpy demo: releasing {manifests.APP} {manifests.NEXT_VERSION} as a canary {plan}"


def _reporter(args: argparse.Namespace, state: DemoState) -> Reporter:
    if args.plain or not sys.stdout.isatty():
        return PlainReporter(state)
    return LiveReporter(state)


async def _main(args: argparse.Namespace, options: Options) -> int:
    state = DemoState(title=opening_line(options), threshold=options.timing.threshold)
    reporter = _reporter(args, state)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    reporter.start()
    summary, code = "", 1
    try:
        outcome = await Demo(options, reporter).run()
        code = 0 if outcome.ok else 1
        summary = f"demo {'passed' if outcome.ok else 'failed'}: {outcome.summary}"
        if outcome.latest:
            # The verdict a --keep user reads last is about the release they made last.
            summary = f"demo {'passed' if outcome.ok else 'failed'} (release 1: {outcome.phase}); latest: " \
                      f"{outcome.latest}"
    except asyncio.CancelledError:
        summary, code = "demo interrupted: sandbox and controller stopped", 130
    except (DemoError, PrometheusError, ApiError, OSError) as exc:
        summary = f"demo failed: {exc}"
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        reporter.stop()
    if state.telemetry_url:
        reporter.line(f"controller metrics were served at {state.telemetry_url}/metrics while the demo ran "
                      "(--keep keeps them up, --metrics-port fixes the port)")
    reporter.line(summary)
    return code


def run(args: argparse.Namespace) -> int:
    """Run the demo; the process exit code."""
    problems = _problems(args)
    if problems:
        for problem in problems:
            sys.stderr.write(f"flaggerpy demo: {problem}\n")
        return 2
    timing = Timing(interval=args.interval, threshold=args.threshold)
    try:
        # The controller would refuse a bad Canary with an Event; say so before starting anything.
        Canary.from_dict(manifests.canary("http://127.0.0.1", timing))
    except SpecError as exc:
        for error in exc.errors:
            sys.stderr.write(f"flaggerpy demo: --interval/--threshold make an invalid Canary: {error}\n")
        return 2
    if args.gateway_crds is not None:
        try:
            manifests.gateway_crds(args.gateway_crds)
        except (FileNotFoundError, ValueError) as exc:
            sys.stderr.write(f"flaggerpy demo: {exc}\n")
            return 2
    try:
        logconf.configure(args.log_level, json=False)
    except ValueError as exc:
        sys.stderr.write(f"flaggerpy demo: {exc}\n")
        return 2
    options = Options(faulty=args.faulty, prometheus=args.prometheus, keep=args.keep, rps=args.rps, timing=timing,
                      timeout=args.timeout, gateway_crds=args.gateway_crds, metrics_port=args.metrics_port,
                      dashboard_port=args.dashboard_port, gateway=args.gateway)
    return asyncio.run(_main(args, options))
