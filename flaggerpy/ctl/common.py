"""What every cluster-facing command shares: flags, the API client, the namespace default and error handling.

Exit codes: 0 success, 1 the request failed (canary not found, not applicable, API error, lint errors), 2 bad
usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes_asyncio.config import ConfigException, list_kube_config_contexts

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import ApiError, ConfigError, Forbidden, NotFound
from flaggerpy.kube.settings import ClientSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

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


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context in use, ``default`` when it names none (kubectl's rule)."""
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


async def get_canary(kube: KubeClient, namespace: str, name: str) -> Obj:
    """The Canary ``namespace/name``; CtlError naming it when it does not exist."""
    try:
        return await kube.get(res.CANARIES, name, namespace)
    except NotFound:
        raise CtlError(f'canary "{name}" not found in namespace "{namespace}"') from None


def describe_api_error(exc: ApiError) -> str:
    """An API failure in words a user can act on."""
    if isinstance(exc, Forbidden):
        return f"forbidden: {exc} (check your RBAC permissions)"
    if exc.status == 0:
        return f"cannot reach the API server: {exc}"
    return str(exc)


def run_async(main: Callable[[], Coroutine[Any, Any, int]], out: Any = None) -> int:
    """Run ``main`` on a fresh event loop; map every expected failure to a one-line error and an exit code."""
    err = out or sys.stderr
    try:
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

