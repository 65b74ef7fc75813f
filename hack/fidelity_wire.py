"""The HTTP side of the differential fidelity replay (hack/fidelity.py): a recording client per API server, and
the normalisation that makes two servers' answers comparable.

Every exchange a case makes is kept as (request line, status, normalised body). Normalising replaces what is
volatile by placeholders: uids and objects' resourceVersions by their order of first appearance in the transcript
(so "the same object" and "a newer version" still compare), lists' and bookmarks' resourceVersions, timestamps and
ages by a marker, continue tokens, the numbers inside a few well-known messages ("too old resource version: 1
(532)"), and the order of a Status's causes (kube-apiserver's follows Go map iteration).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
AGE = re.compile(r"^(\d+(ms|s|m|h|d|y))+$|^<invalid>$|^<unknown>$")
TIME_KEYS = frozenset({"creationTimestamp", "deletionTimestamp", "lastTransitionTime", "lastUpdateTime", "time",
                       "firstTimestamp", "lastTimestamp", "eventTime", "renewTime", "acquireTime", "startTime",
                       "lastHeartbeatTime", "lastProbeTime", "startedAt"})
MESSAGE_NUMBERS = (
    (re.compile(r"too old resource version: \d+ \(\d+\)"), "too old resource version: <rv> (<rv>)"),
    (re.compile(r"Timeout: Too large resource version: \d+, current: \d+"),
     "Timeout: Too large resource version: <rv>, current: <rv>"),
)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Exchange:
    """One request and its answer, as compared."""

    request: str
    status: int
    body: Any
    events: list[Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the report."""
        out: dict[str, Any] = {"request": self.request, "status": self.status, "body": self.body}
        if self.events is not None:
            out["events"] = self.events
        return out


@dataclass
class Normaliser:
    """Placeholders for one transcript: the n-th distinct uid is ``<uid:n>``, the n-th resourceVersion ``<rv:n>``."""

    uids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def _uid(self, value: str) -> str:
        return self.uids.setdefault(value, f"<uid:{len(self.uids) + 1}>")

    def _rv(self, value: str) -> str:
        if not value:
            return value
        return self.versions.setdefault(value, f"<rv:{len(self.versions) + 1}>")

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict) and value.get("kind") == "Status":
            value = _causes_in_order(value)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                # Field managers are compared where they matter (the server-side apply case picks them out):
                # elsewhere every write of the real server would differ by them alone.
                if k in ("managedFields", "selfLink"):
                    continue
                if k == "metadata" and isinstance(v, dict) and "uid" not in v and v.get("resourceVersion"):
                    # A list's or bookmark's version is the server's latest, which unrelated writes (a real
                    # cluster's controllers renew Leases all the time) move: only that it is there is compared.
                    out[k] = {**self({mk: mv for mk, mv in v.items() if mk != "resourceVersion"}, k),
                              "resourceVersion": "<rv>"}
                    continue
                out[k] = self(v, k)
            return out
        if isinstance(value, list):
            return [self(v, key) for v in value]
        if isinstance(value, str):
            if key == "uid":
                return self._uid(value)
            if key == "resourceVersion":
                return self._rv(value)
            if key == "continue":
                return "<continue>" if value else value
            if key in TIME_KEYS or TIMESTAMP.match(value):
                return "<time>"
            if key == "message":
                for pattern, replacement in MESSAGE_NUMBERS:
                    value = pattern.sub(replacement, value)
            return value
        return value


def _causes_in_order(status: dict[str, Any]) -> dict[str, Any]:
    """A Status with its causes (and the message listing them) in one order: kube-apiserver validates a level's
    fields in Go map order, so two runs may name the same causes in different orders."""
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(causes, list) or len(causes) < 2:
        return status
    ordered = sorted(causes, key=lambda c: json.dumps(c, sort_keys=True))
    out = {**status, "details": {**details, "causes": ordered}}
    message = str(status.get("message") or "")
    head, sep, listed = message.partition(" is invalid: [")
    parts = [f"{c.get('field', '')}: {c.get('message', '')}" for c in causes]
    if sep and listed.endswith("]") and sorted(listed[:-1].split(", ")) == sorted(", ".join(parts).split(", ")):
        out["message"] = head + sep + ", ".join(sorted(parts)) + "]"
    return out


class Recorder:
    """A client of one API server that records every exchange of the case it runs."""

    def __init__(self, name: str, url: str, ssl_context: ssl.SSLContext | None, token: str | None) -> None:
        self.name = name
        self.url = url
        self._ssl = ssl_context
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self.transcript: list[Exchange] = []
        self.normalise = Normaliser()

    async def __aenter__(self) -> Recorder:
        self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def new_case(self) -> None:
        """Start a new transcript (placeholders numbered afresh)."""
        self.transcript = []
        self.normalise = Normaliser()

    def _headers(self, content_type: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def call(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None,
                   content_type: str | None = None, accept: str = "application/json", record: bool = True,
                   pick: Any = None) -> tuple[int, Any]:
        """Send one request; returns (status, raw decoded body) and records the normalised exchange.

        ``pick`` (a function of the decoded body) narrows what is compared, e.g. to the discovery entries both
        servers must have; ``record=False`` is for arranging (namespaces) without comparing.
        """
        assert self._session is not None
        data: bytes | None = None
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
                content_type = content_type or "application/yaml"
            else:
                data = json.dumps(body).encode()
                content_type = content_type or "application/json"
        target = self.url + path + (("?" + urlencode(query)) if query else "")
        async with self._session.request(method, target, data=data, ssl=self._ssl,
                                         headers=self._headers(content_type, accept)) as response:
            raw = await response.read()
            status = response.status
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = {"<text>": raw.decode(errors="replace")[:500]}
        if record:
            shown = pick(decoded) if pick is not None and status < 300 else decoded
            line = f"{method} {path}" + (("?" + urlencode(sorted(query.items()))) if query else "")
            self.transcript.append(Exchange(line, status, self.normalise(shown)))
        return status, decoded

    async def watch(self, path: str, query: dict[str, Any], *, seconds: float, until: int | None = None,
                    record: bool = True) -> tuple[int, list[dict[str, Any]]]:
        """A watch request read for at most ``seconds`` (or until ``until`` events arrived); records its events."""
        assert self._session is not None
        events: list[dict[str, Any]] = []
        target = self.url + path + "?" + urlencode(query)
        status = 0
        body: Any = None
        try:
            async with asyncio.timeout(seconds):
                async with self._session.get(target, ssl=self._ssl,
                                             headers=self._headers(None, "application/json")) as response:
                    status = response.status
                    if status != 200:
                        raw = await response.read()
                        body = json.loads(raw) if raw else None
                    else:
                        async for line in response.content:
                            if line.strip():
                                events.append(json.loads(line))
                                if until is not None and len(events) >= until:
                                    break
        except TimeoutError:
            pass
        if record:
            line = f"WATCH {path}?" + urlencode(sorted((k, v) for k, v in query.items() if k != "watch"))
            self.transcript.append(Exchange(line, status, self.normalise(body), self.normalise(events)))
        return status, events


def differences(a: Any, b: Any, path: str = "", limit: int = 40) -> list[dict[str, Any]]:
    """Where two normalised values differ: JSON paths with both sides (at most ``limit``)."""
    out: list[dict[str, Any]] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y), key=str):
                sub = f"{where}.{key}" if where else str(key)
                if key not in x:
                    out.append({"path": sub, "sandbox": "<absent>", "real": y[key]})
                elif key not in y:
                    out.append({"path": sub, "sandbox": x[key], "real": "<absent>"})
                else:
                    walk(x[key], y[key], sub)
            return
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                out.append({"path": f"{where} (length)", "sandbox": len(x), "real": len(y)})
            for i, (p, q) in enumerate(zip(x, y, strict=False)):
                walk(p, q, f"{where}[{i}]")
            return
        if x != y:
            out.append({"path": where, "sandbox": x, "real": y})

    walk(a, b, path)
    return out
