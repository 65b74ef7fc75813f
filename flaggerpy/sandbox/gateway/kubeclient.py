"""A small read-only Kubernetes client: kubeconfig loading, then list and watch over aiohttp.

The pod backends (``backends``) run against the sandbox or against any other cluster (a real kube-apiserver with
kwok nodes), so they cannot use the sandbox's in-process cluster, and the sandbox imports nothing of flaggerpy's
controller (``flaggerpy.kube``). This is all they need: a kubeconfig's server, TLS material and token, a LIST, and
a WATCH from the list's resourceVersion that is resumed after it ends and relisted after 410 Gone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
import yaml

log = structlog.get_logger(logger_name="flaggerpy.sandbox.backends")


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used; the message names the file and the field."""


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


@dataclass(frozen=True)
class ApiEndpoint:
    """Where an API server is and how to authenticate to it."""

    server: str
    ssl: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict)


def _material(entry: dict[str, Any], key: str, base: Path, tmp: list[str]) -> str | None:
    """A file path for ``key`` or ``key-data`` (base64, written to a private temp file for the ssl module)."""
    if entry.get(f"{key}-data"):
        handle, path = tempfile.mkstemp(prefix="flaggerpy-kubeconfig-")
        with os.fdopen(handle, "wb") as out:
            out.write(base64.b64decode(entry[f"{key}-data"]))
        tmp.append(path)
        return path
    value = entry.get(key)
    if not value:
        return None
    path_value = Path(str(value))
    return str(path_value if path_value.is_absolute() else base / path_value)


def load_kubeconfig(path: str | Path, context: str | None = None) -> ApiEndpoint:
    """The API endpoint of ``context`` (default: the current context) in the kubeconfig at ``path``."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"{path}: cannot read kubeconfig: {exc}") from exc
    if not isinstance(config, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig")

    def named(section: str, name: str | None) -> dict[str, Any]:
        for item in config.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                inner = item.get(section[:-1])
                return inner if isinstance(inner, dict) else {}
        raise KubeconfigError(f"{path}: {section}: no entry named {name!r}")

    context_name = context or config.get("current-context")
    ctx = named("contexts", context_name)
    cluster = named("clusters", ctx.get("cluster"))
    user = named("users", ctx.get("user")) if ctx.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"{path}: clusters[{ctx.get('cluster')!r}].server: an http(s) URL is required")
    headers: dict[str, str] = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if server.startswith("http://"):
        return ApiEndpoint(server.rstrip("/"), False, headers)
    tmp: list[str] = []
    try:
        if cluster.get("insecure-skip-tls-verify"):
            context_ssl = ssl.create_default_context()
            context_ssl.check_hostname = False
            context_ssl.verify_mode = ssl.CERT_NONE
        else:
            ca = _material(cluster, "certificate-authority", path.parent, tmp)
            context_ssl = ssl.create_default_context(cafile=ca)
        cert = _material(user, "client-certificate", path.parent, tmp)
        key = _material(user, "client-key", path.parent, tmp)
        if cert:
            context_ssl.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise KubeconfigError(f"{path}: TLS material for context {context_name!r}: {exc}") from exc
    finally:
        for name in tmp:
            os.unlink(name)
    return ApiEndpoint(server.rstrip("/"), context_ssl, headers)


class KubeReader:
    """LIST and WATCH of one collection path (``/api/v1/pods``) against an ``ApiEndpoint``."""

    def __init__(self, endpoint: ApiEndpoint, request_timeout: float = 30.0, watch_timeout: int = 60) -> None:
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self.watch_timeout = watch_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self.endpoint.headers)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def list(self, path: str) -> tuple[list[dict[str, Any]], str]:
        """The collection's items and its resourceVersion."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with self._client().get(self.endpoint.server + path, ssl=self.endpoint.ssl, timeout=timeout) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status,
                                                  message=(await resp.text())[:200])
            body = await resp.json()
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) of each change after ``resource_version`` until the server ends the stream; ``Gone``
        when the version is too old. Bookmarks are not yielded."""
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(self.watch_timeout)}
        # No total timeout: the stream lasts timeoutSeconds; a read that stalls past it means a hung connection.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout,
                                        sock_read=self.watch_timeout + 30)
        async with self._client().get(self.endpoint.server + path, params=params, ssl=self.endpoint.ssl,
                                      timeout=timeout) as resp:
            if resp.status == 410:
                raise Gone()
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status,
                                                  message=(await resp.text())[:200])
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise aiohttp.ClientResponseError(resp.request_info, resp.history,
                                                      status=int(obj.get("code") or 500),
                                                      message=str(obj.get("message", ""))[:200])
                if kind != "BOOKMARK":
                    yield str(kind), obj

    async def follow(self, path: str, retry_delay: float = 1.0) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every change for ever: ("SYNC", {"items": [...]}) after each (re)list, then the watch's events."""
        while True:
            try:
                items, version = await self.list(path)
                yield "SYNC", {"items": items}
                while True:
                    async for change in self.watch(path, version):
                        version = str(change[1].get("metadata", {}).get("resourceVersion", version))
                        yield change
            except Gone:
                continue
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                log.info("pod watch failed; retrying", server=self.endpoint.server, error=str(exc))
                await asyncio.sleep(retry_delay)
