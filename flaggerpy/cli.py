"""Command-line entry point: ``flaggerpy <command> ...``.

Each command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``. Only the chosen
command's module is imported, so ``flaggerpy sandbox`` does not pay for the controller's imports and vice versa.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flaggerpy import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("flaggerpy.sandbox.cli", "run the embedded Kubernetes API server (a kubeconfig points at it)"),
    "run": ("flaggerpy.canary.runner", "run the controller against a kubeconfig or in-cluster"),
    "demo": ("flaggerpy.demo.cli", "a canary release on the embedded sandbox, shown live (--faulty: a rollback)"),
    "loadtester": (
        "flaggerpy.loadtester.cli",
        "run the flagger-loadtester compatible webhook server (commands, manual gates)",
    ),
    "get": ("flaggerpy.ctl.get", "list canaries with phase, weight and progress (--watch for a live view)"),
    "status": ("flaggerpy.ctl.status", "show the timeline of one canary's current release"),
    "promote": ("flaggerpy.ctl.promote", "promote a canary now, skipping the remaining analysis"),
    "abort": ("flaggerpy.ctl.abort", "roll a canary back now"),
    "retry": ("flaggerpy.ctl.retry", "re-run the analysis of a failed canary revision"),
    "pause": ("flaggerpy.ctl.pause", "suspend a canary (spec.suspend)"),
    "resume": ("flaggerpy.ctl.resume", "resume a suspended canary"),
    "dashboard": ("flaggerpy.dashboard.cli", "serve a live web dashboard of the canaries on 127.0.0.1"),
    "lint": ("flaggerpy.ctl.lint", "validate Canary, MetricTemplate and AlertProvider manifests offline"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return ("usage: flaggerpy COMMAND [options]\n       flaggerpy --version\n\ncommands:\n" + "\n".join(lines)
            + "\n\nRun 'flaggerpy COMMAND --help' for the options of a command.\n")


def version_line() -> str:
    """``flaggerpy <version>`` of the code that runs (the package's version, also the image tag in deploy/)."""
    return f"flaggerpy {__version__}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named by the first argument; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] in ("--version", "-version"):
        sys.stdout.write(version_line())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"flaggerpy: unknown command {name!r}\n\n{_usage()}")
        return 2
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"flaggerpy {name}", description=help_text)
        module.configure(parser)
        return int(module.run(parser.parse_args(rest)) or 0)
    except KeyboardInterrupt:
        # Commands handle Ctrl-C themselves once running; this covers the moments before (imports, parsing).
        return 130


if __name__ == "__main__":
    sys.exit(main())
