"""Synthetic traffic: steady request streams against the simulated Gateway, bounded and stoppable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.sandbox.gateway.match import Request


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A bad input field and what is wrong with it."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class TrafficError(ValueError):
    """A traffic request that cannot be started; ``problems`` names each bad field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    """What a generator sends: one request shape at ``rps`` for ``duration`` seconds (None: until stopped).

    With ``keep_cookies`` the generator behaves like one browser: it stores cookies the Gateway sets and sends
    them back, which is how session affinity is observed.
    """

    host: str
    path: str = "/"
    rps: float = 50.0
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    duration: float | None = None
    gateway: tuple[str, str] | None = None
    keep_cookies: bool = False

    @classmethod
    def from_json(cls, body: Any, max_rps: float) -> TrafficSpec:
        """Validate a JSON body (as POSTed to /sandbox/dataplane/traffic); raises TrafficError naming fields."""
        problems: list[FieldProblem] = []
        if not isinstance(body, dict):
            raise TrafficError([FieldProblem("body", "must be a JSON object")])
        host = body.get("host")
        if not isinstance(host, str) or not host:
            problems.append(FieldProblem("host", "required, a non-empty string"))
        path = body.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append(FieldProblem("path", "must be a string starting with '/'"))
        rps = body.get("rps", 50)
        if isinstance(rps, bool) or not isinstance(rps, int | float) or not 0 < rps <= max_rps:
            problems.append(FieldProblem("rps", f"must be a number > 0 and <= {max_rps:g}"))
        duration = body.get("duration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
        ):
            problems.append(FieldProblem("duration", "must be a number of seconds > 0"))
        method = body.get("method", "GET")
        if not isinstance(method, str) or not method.isalpha():
            problems.append(FieldProblem("method", "must be an HTTP method such as GET"))
        maps: dict[str, dict[str, str]] = {}
        for name in ("headers", "query"):
            value = body.get(name) or {}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                problems.append(FieldProblem(name, "must be an object of string values"))
                value = {}
            maps[name] = value
        gateway = body.get("gateway")
        gateway_key = None
        if gateway is not None:
            if not isinstance(gateway, str) or gateway.count("/") != 1 or "" in gateway.split("/"):
                problems.append(FieldProblem("gateway", "must be '<namespace>/<name>'"))
            else:
                namespace, name = gateway.split("/")
                gateway_key = (namespace, name)
        keep_cookies = body.get("keepCookies", False)
        if not isinstance(keep_cookies, bool):
            problems.append(FieldProblem("keepCookies", "must be a boolean"))
        unknown = sorted(
            set(body)
            - {"host", "path", "rps", "duration", "method", "headers", "query", "gateway", "keepCookies"}
        )
        problems.extend(FieldProblem(name, "unknown field") for name in unknown)
        if problems:
            raise TrafficError(problems)
        assert isinstance(host, str)  # checked above: problems raise before this
        return cls(
            host=host,
            path=path,
            rps=float(rps),
            headers=maps["headers"],
            query=maps["query"],
            method=method.upper(),
            duration=float(duration) if duration is not None else None,
            gateway=gateway_key,
            keep_cookies=keep_cookies,
        )


Sender = Callable[[Request, tuple[str, str] | None], Any]
_ids = itertools.count(1)


class TrafficGenerator:
    """Sends ``spec.rps`` requests per second through ``send`` on a fixed tick until stopped or expired."""

    def __init__(self, spec: TrafficSpec, send: Sender, tick: float) -> None:
        self.id = f"traffic-{next(_ids)}"
        self.spec = spec
        self.sent = 0
        self._send = send
        self._tick = tick
        self._cookies: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None

    def describe(self) -> dict:
        """JSON-ready description."""
        spec = self.spec
        return {
            "id": self.id,
            "host": spec.host,
            "path": spec.path,
            "rps": spec.rps,
            "method": spec.method,
            "duration": spec.duration,
            "sent": self.sent,
            "running": self.task is not None and not self.task.done(),
        }

    def _request(self) -> Request:
        headers = dict(self.spec.headers)
        if self._cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self._cookies.items())
        return Request(self.spec.host, self.spec.path, self.spec.method, headers, self.spec.query)

    def _remember_cookies(self, response: Any) -> None:
        for name, value in getattr(response, "headers", ()):
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                if "=" in pair:
                    key, _, cookie = pair.partition("=")
                    self._cookies[key.strip()] = cookie.strip()

    async def run(self) -> None:
        """The generator loop: a token bucket refilled every tick, capped at one second of requests."""
        loop = asyncio.get_running_loop()
        started = last = loop.time()
        tokens = 0.0
        while self.spec.duration is None or last - started < self.spec.duration:
            await asyncio.sleep(self._tick)
            now = loop.time()
            # A stalled event loop must not turn into a burst: at most one second's worth is owed.
            tokens = min(tokens + (now - last) * self.spec.rps, max(self.spec.rps, 1.0))
            last = now
            while tokens >= 1.0:
                tokens -= 1.0
                response = self._send(self._request(), self.spec.gateway)
                self.sent += 1
                if self.spec.keep_cookies:
                    self._remember_cookies(response)

