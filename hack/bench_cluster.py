"""The benchmark's own view of the cluster: plain HTTP to the API server (no flaggerpy code on this side, so the
bench measures the controller and not itself), a list+watch stream per resource that stamps every event with the
time it arrived, and the manifests the benchmark applies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stats import request_key

try:
    # Decoding every watch event is most of the bench's own CPU; orjson does it several times faster.
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the standard library is enough, only slower
    from json import loads as _loads

_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Listing thousands of Canaries is megabytes of JSON.
_LIST_TIMEOUT = aiohttp.ClientTimeout(total=300)
_RETRIES = 5


class ApiError(RuntimeError):
    """The API server answered with an error status."""


class Api:
    """A minimal Kubernetes REST client over one aiohttp session.

    It counts its own requests as the sandbox counts them (``own``, by ``(verb, resource)``) so the bench can take
    them out of the sandbox's counters, and how often a watch had to relist (``relists``): a relist can miss
    intermediate versions, which the report must then say.
    """

    def __init__(self, base_url: str, concurrency: int = 32, ssl: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self.own: Counter[tuple[str, str]] = Counter()
        self.relists = 0

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl) if self._ssl else aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session."""
        assert self._session is not None, "use Api as an async context manager"
        return self._session

    def _count(self, method: str, path: str) -> None:
        key = request_key(method, path)
        if key is not None:
            self.own[key] += 1

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                      time_limit: aiohttp.ClientTimeout = _TIMEOUT) -> dict[str, Any]:
        """One request with retries on connection errors and 5xx/429; the decoded JSON answer."""
        last = ""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in range(_RETRIES):
            async with self._limit:
                try:
                    async with self.session.request(method, self.base_url + path, data=data, headers=headers,
                                                    timeout=time_limit) as resp:
                        self._count(method, path)
                        answer = _loads(await resp.read())
                        if resp.status < 300:
                            return answer
                        if resp.status == 409 and method == "POST" and attempt > 0:
                            # An earlier attempt timed out on our side but was committed: it exists, as wanted.
                            return answer
                        last = f"{method} {path}: {resp.status} {answer.get('message', '')}"
                        if resp.status < 500 and resp.status != 429:
                            raise ApiError(last)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{method} {path}: {exc!r}"
            await asyncio.sleep(0.1 * 2**attempt)
        raise ApiError(last)

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """POST ``obj`` to the collection at ``path``."""
        return await self.request("POST", path, obj)

    async def get(self, path: str) -> dict[str, Any]:
        """GET one object or a list."""
        return await self.request("GET", path, time_limit=_LIST_TIMEOUT)

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT ``obj`` at ``path``."""
        return await self.request("PUT", path, obj)

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """PATCH ``path`` with a JSON patch (one request, where a get + replace would be two)."""
        return await self.request("PATCH", path, operations, "application/json-patch+json")

    async def watch(self, path: str, on_event: Callable[[str, dict[str, Any], float], None],
                    listed: asyncio.Event | None = None) -> None:
        """List ``path`` (each item as ADDED), then watch it forever; ``on_event(type, obj, arrival_time)``.
        A 410 (history expired) relists and carries on from the new list."""
        version = await self._list(path, on_event)
        if listed is not None:
            listed.set()
        while True:
            url = f"{path}?watch=true&allowWatchBookmarks=true&resourceVersion={version}"
            try:
                async with self.session.get(self.base_url + url,
                                            timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
                    self._count("GET", url)
                    if resp.status == 410:
                        version = await self._relist(path, on_event)
                        continue
                    async for event in _lines(resp):
                        kind = event.get("type")
                        obj = event.get("object") or {}
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                version = await self._relist(path, on_event)
                            break
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            on_event(kind, obj, time.time())
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)

    async def _list(self, path: str, on_event: Callable[[str, dict[str, Any], float], None]) -> str:
        initial = await self.get(path)
        now = time.time()
        for item in initial.get("items") or []:
            on_event("ADDED", item, now)
        return str(initial["metadata"]["resourceVersion"])

    async def _relist(self, path: str, on_event: Callable[[str, dict[str, Any], float], None]) -> str:
        self.relists += 1
        return await self._list(path, on_event)


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    # Whatever arrived, split on newlines here: aiohttp's readline per event was a third of the bench's own CPU.
    pending = b""
    async for chunk in resp.content.iter_any():
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            if line.strip():
                yield _loads(line)
    if pending.strip():
        yield _loads(pending)


# -- manifests --------------------------------------------------------------------------------------------------


def deployment(name: str, namespace: str, image: str) -> dict[str, Any]:
    """A one-replica podinfo-like Deployment."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image,
                                                  "ports": [{"name": "http", "containerPort": 9898}]}]}},
        },
    }


def canary(name: str, namespace: str, interval: float, step_weight: int, max_weight: int,
           failing_webhook: str | None = None) -> dict[str, Any]:
    """A Gateway API Canary without metrics; ``failing_webhook`` adds a rollout hook that fails the first check."""
    analysis: dict[str, Any] = {"interval": f"{interval:g}s", "threshold": 1, "stepWeight": step_weight,
                                "maxWeight": max_weight}
    if failing_webhook:
        analysis["webhooks"] = [{"name": "fail", "type": "rollout", "url": failing_webhook, "timeout": "5s"}]
    return {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 600,
            "service": {"port": 9898, "targetPort": 9898, "hosts": [f"{name}.example.com"],
                        "gatewayRefs": [{"name": "public-gateway", "namespace": "gateway"}]},
            "analysis": analysis,
        },
    }


def httproute(name: str, namespace: str, weight: int = 0) -> dict[str, Any]:
    """The HTTPRoute a Gateway API canary owns: primary and canary backends, ``weight`` percent to the canary."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "public-gateway", "namespace": "gateway"}],
            "hostnames": [f"{name}.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"name": f"{name}-primary", "port": 9898, "weight": 100 - weight},
                                       {"name": f"{name}-canary", "port": 9898, "weight": weight}]}],
        },
    }
