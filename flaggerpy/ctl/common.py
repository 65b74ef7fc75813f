"""What every cluster-facing command shares: flags, the API client, the namespace default and error handling.

Exit codes: 0 success, 1 the request failed (canary not found, not applicable, API error, unusable kubeconfig, lint
errors), 2 bad usage (argparse, conflicting flags, a NAME or namespace Kubernetes would never accept), 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO, cast

import structlog
import yaml
from kubernetes_asyncio.config import ConfigException, list_kube_config_contexts

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import ApiError, ConfigError, Forbidden, NotFound
from flaggerpy.kube.settings import ClientSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Kubernetes' own rules (DNS-1123): object names are subdomains, namespaces are labels.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NO_CRD = ("the cluster does not serve canaries.flagger.app/v1beta1: are Flagger's CRDs installed? "
          "(kubectl get crd canaries.flagger.app)")
# The workload resources a Canary's targetRef may name, by kind.
TARGETS = {"Deployment": res.DEPLOYMENTS, "DaemonSet": res.DAEMONSETS}
# How many of a namespace's canaries a "not found" error suggests.
SUGGESTIONS = 5

# A person is waiting at the terminal: fail within seconds rather than retry for half a minute.
CLI_CLIENT_SETTINGS = ClientSettings(connect_timeout=5.0, read_timeout=15.0, retry_attempts=3, backoff_max=2.0)


class CtlError(Exception):
    """A failure to report to the user as ``error: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_cluster_args(parser: argparse.ArgumentParser, namespaced: bool = True) -> None:
    """``--kubeconfig``, ``--context`` and (for namespaced commands) ``-n/--namespace``."""
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context to use (default: the current context)")
    if namespaced:
        parser.add_argument("-n", "--namespace", help="namespace (default: the context's namespace, else default)")


def usage_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the NAME and ``-n`` the user typed, before anything asks the cluster about them."""
    problems = []
    name = getattr(args, "name", None)
    if name is not None and not (len(name) <= 253 and _SUBDOMAIN.fullmatch(name)):
        problems.append(f"NAME {name!r}: not a valid Canary name (lowercase letters, digits, '-' and '.', "
                        "starting and ending with a letter or digit, at most 253)")
    namespace = getattr(args, "namespace", None)
    if namespace is not None and not (len(namespace) <= 63 and _LABEL.fullmatch(namespace)):
        problems.append(f"-n/--namespace {namespace!r}: not a valid namespace name (lowercase letters, digits "
                        "and '-', starting and ending with a letter or digit, at most 63)")
    return problems


def refuse(problems: list[str], err: Any = None) -> int:
    """Print each usage problem as ``error: ...``; the exit code for bad usage."""
    for problem in problems:
        (err or sys.stderr).write(f"error: {problem}\n")
    return EXIT_USAGE


def kubeconfig_path(args: argparse.Namespace) -> tuple[str, Path] | None:
    """(how it was chosen, path) of the kubeconfig the client will read; None when it will use in-cluster config.

    Mirrors the kube layer's order: ``--kubeconfig``, in a pod the service account, then the first entry of
    ``$KUBECONFIG``, then ~/.kube/config.
    """
    if args.kubeconfig:
        return "--kubeconfig", Path(args.kubeconfig)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if first:
        return "$KUBECONFIG", Path(first)
    return "kubeconfig", Path.home() / ".kube" / "config"


def check_kubeconfig(args: argparse.Namespace) -> None:
    """CtlError naming the flag or variable when the kubeconfig cannot be read as one, or lacks ``--context``.

    The client library would answer a YAML error or a non-mapping with a traceback; a missing file is left to the
    kube layer, which names it.
    """
    chosen = kubeconfig_path(args)
    if chosen is None or not chosen[1].is_file():
        return
    source, path = chosen
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"{source} {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise CtlError(f"{source} {path}: not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    if not isinstance(config, dict):
        raise CtlError(f"{source} {path}: not a kubeconfig (expected a mapping with clusters, contexts and users)")
    context = getattr(args, "context", None)
    if context:
        names = [str(c.get("name")) for c in config.get("contexts") or [] if isinstance(c, dict)]
        if context not in names:
            known = ", ".join(names) or "none"
            raise CtlError(f"--context {context!r}: no such context in {path} (contexts: {known})")


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context in use, ``default`` when it names none (kubectl's rule)."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
    if not Path(path).is_file():
        # The client names a missing file; asking the library here would only add a warning of its own first.
        return "default"
    try:
        contexts, active = list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError, TypeError, ValueError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def namespace_of(args: argparse.Namespace) -> str:
    """``-n`` when given, else the kubeconfig context's namespace."""
    return str(args.namespace) if getattr(args, "namespace", None) else context_namespace(args.kubeconfig, args.context)


def client(args: argparse.Namespace) -> KubeClient:
    """A KubeClient for the cluster the flags name (open it with ``async with``)."""
    return KubeClient(kubeconfig=args.kubeconfig, context=args.context, settings=CLI_CLIENT_SETTINGS)


async def list_canaries(kube: KubeClient, namespace: str | None) -> list[Obj]:
    """The Canaries of ``namespace`` (None: all); CtlError when the cluster has no Canary CRD."""
    try:
        canaries, _ = await kube.list(res.CANARIES, namespace)
    except NotFound:
        raise CtlError(NO_CRD) from None
    return canaries


async def get_canary(kube: KubeClient, namespace: str, name: str) -> Obj:
    """The Canary ``namespace/name``; CtlError saying why when it cannot be found (no CRD, no such namespace)."""
    try:
        return await kube.get(res.CANARIES, name, namespace)
    except NotFound:
        raise CtlError(await _not_found(kube, namespace, name)) from None


async def _not_found(kube: KubeClient, namespace: str, name: str) -> str:
    """Why ``namespace/name`` is not there, in the user's terms (error path only: the extra reads cost nothing)."""
    message = f'canary "{name}" not found in namespace "{namespace}"'
    try:
        listed = await list_canaries(kube, namespace)
    except Forbidden:
        # Allowed to get but not to list: the plain answer is all this user may know.
        return message
    others = [str((c.get("metadata") or {}).get("name")) for c in listed]
    if others:
        shown = ", ".join(sorted(others)[:SUGGESTIONS]) + (", ..." if len(others) > SUGGESTIONS else "")
        return f"{message} (canaries there: {shown})"
    try:
        await kube.get(res.NAMESPACES, namespace)
    except NotFound:
        return f'{message}: namespace "{namespace}" does not exist (-n/--namespace)'
    except Forbidden:
        pass
    return f"{message}, which has no canaries (choose another with -n/--namespace)"


def describe_api_error(exc: ApiError) -> str:
    """An API failure in words a user can act on."""
    if isinstance(exc, Forbidden):
        return f"forbidden: {exc} (check your RBAC permissions)"
    if exc.status == 0:
        return f"cannot reach the API server: {exc}"
    return str(exc)


class _CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is when a line is written (a test runner swaps it, and may close the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def quiet_logs() -> None:
    """Errors only, on stderr: stdout carries the command's output, and the client's retries are not news to a
    person (the command reports the failure itself). Left alone when the process configured logging already."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
    )


def run_async(main: Callable[[], Coroutine[Any, Any, int]], out: Any = None,
              args: argparse.Namespace | None = None) -> int:
    """Run ``main`` on a fresh event loop; map every expected failure to a one-line error and an exit code.

    With ``args``, the NAME/namespace and the kubeconfig are checked first, so a typo never reaches the network.
    """
    err = out or sys.stderr
    quiet_logs()
    try:
        if args is not None:
            problems = usage_problems(args)
            if problems:
                return refuse(problems, err)
            check_kubeconfig(args)
        return asyncio.run(main())
    except CtlError as exc:
        err.write(f"error: {exc}\n")
        return exc.code
    except ConfigError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
    except ApiError as exc:
        err.write(f"error: {describe_api_error(exc)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

