"""A hostile tenant against a running controller: the sandbox cluster in this process, ``flaggerpy run`` as a
subprocess pointed at it (its log captured at debug level), and fake servers on loopback that a tenant's addresses
lead to (an attacker's collector, a cloud metadata service holding the controller's credentials).

One controller serves a whole test module; each probe is a tenant with a namespace of its own, so probes run side
by side and their findings are greped from that namespace's Events and Canary status and from the shared log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import integration_sandbox, wait_for
from tests.manifests import canary, crd_documents, deployment
from tests.paths import REPO_ROOT
from tests.ports import free_port

# What the controller's own identity would hand out: it must never reach a tenant.
CONTROLLER_GOOGLE_TOKEN = "ya29.controller-token-0f9e8d"
CONTROLLER_AWS_KEY_ID = "AKIACONTROLLER0000"
CONTROLLER_AWS_SECRET = "controller-aws-secret-7c6b5a"
METADATA_SECRET = "wJalrXUtnFEMI-metadata-SecretAccessKey-42"
RELEASE_TIMEOUT = 40.0


@dataclass
class Seen:
    """One request a fake server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeServer:
    """An aiohttp server on 127.0.0.1 answering every path with ``handler``; records each request."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeServer:
        """Listen on a free loopback port."""

        async def record(request: web.Request) -> web.StreamResponse:
            body = (await request.read()).decode(errors="replace")
            self.seen.append(Seen(request.method, request.path, request.query_string, dict(request.headers), body))
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def text(self) -> str:
        """Everything received, for greps."""
        return json.dumps([vars(s) for s in self.seen])


async def metadata_service(request: web.Request) -> web.StreamResponse:
    """A cloud metadata service: AWS's credentials document and Google's token endpoint."""
    if request.path.endswith("/service-accounts/default/token"):
        return web.json_response({"access_token": CONTROLLER_GOOGLE_TOKEN, "expires_in": 3600})
    if request.path.endswith("/project/project-id"):
        return web.Response(text="controller-project")
    return web.json_response({"Code": "Success", "AccessKeyId": "ASIAMETADATA", "SecretAccessKey": METADATA_SECRET,
                              "Token": "metadata-session-token"})


@dataclass
class ControllerProcess:
    """``flaggerpy run`` against the sandbox; its stderr (JSON log lines) goes to ``log_path``."""

    proc: asyncio.subprocess.Process
    port: int
    log_path: Path

    def log(self) -> str:
        """The whole log so far."""
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, within: float = 30.0) -> None:
        """Wait until ``/readyz`` answers 200 (the caches are synced)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                        if resp.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                if self.proc.returncode is not None or loop.time() > deadline:
                    raise AssertionError(f"the controller is not ready; its log:\n{self.log()[-3000:]}")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM, then wait for the graceful exit (kill past 20 s)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def controller_process(sb: Sandbox, log_path: Path, *flags: str,
                             env: Mapping[str, str] | None = None) -> AsyncIterator[ControllerProcess]:
    """Run the controller until the block ends."""
    port = free_port()
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "GCE_"))}
    environ.update(env or {})
    environ.pop("KUBERNETES_SERVICE_HOST", None)
    with log_path.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flaggerpy.cli", "run", "--kubeconfig", str(sb.kubeconfig_path),
            "--listen-address", "127.0.0.1", "--port", str(port), "--log-level", "debug", *flags,
            env=environ, stdout=sink, stderr=sink, cwd=REPO_ROOT,
        )
    process = ControllerProcess(proc, port, log_path)
    try:
        await process.wait_ready()
        yield process
    finally:
        await process.stop()


class Tenancy:
    """The cluster as a tenant (and its auditor) sees it."""

    def __init__(self, sb: Sandbox, controller: ControllerProcess, servers: dict[str, FakeServer]) -> None:
        self.sb = sb
        self.controller = controller
        self.servers = servers

    async def namespace(self, name: str) -> None:
        """Create the tenant's namespace."""
        await self.sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": name}})

    async def apply(self, group: str, plural: str, obj: dict[str, Any]) -> None:
        """Create ``obj``."""
        await self.sb.cluster.create(group, plural, copy.deepcopy(obj))

    async def secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """A Secret holding ``data`` (base64-encoded, as the API stores it)."""
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        await self.apply("", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                         "metadata": {"name": name, "namespace": namespace}, "data": encoded})

    async def template(self, namespace: str, name: str, provider: dict[str, Any], query: str = "up") -> None:
        """A MetricTemplate."""
        await self.apply("flagger.app", "metrictemplates", {
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"provider": provider, "query": query},
        })

    async def release(self, namespace: str, analysis: dict[str, Any], name: str = "podinfo",
                      env_from: list[dict[str, Any]] | None = None) -> None:
        """Deploy ``name`` with a Canary, wait for its initialisation, then roll out a new image.

        ``env_from`` (ConfigMap or Secret references) makes those configs tracked.
        """
        target = deployment(name, namespace=namespace)
        if env_from:
            target["spec"]["template"]["spec"]["containers"][0]["envFrom"] = env_from
        await self.apply("apps", "deployments", target)
        await self.apply("flagger.app", "canaries", canary(name, analysis=analysis, namespace=namespace))
        await self.wait_phase(namespace, name, ("Initialized",))
        dep = copy.deepcopy(self.sb.cluster.get("apps", "deployments", namespace, name))
        dep["metadata"].pop("resourceVersion", None)
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.0.1"
        await self.sb.cluster.update("apps", "deployments", dep)

    def status(self, namespace: str, name: str = "podinfo") -> dict[str, Any]:
        """The Canary's status."""
        obj = self.sb.cluster.get("flagger.app", "canaries", namespace, name) or {}
        return obj.get("status") or {}

    async def wait_phase(self, namespace: str, name: str, phases: Iterable[str],
                         within: float = RELEASE_TIMEOUT) -> dict[str, Any]:
        """Wait until the Canary is in one of ``phases``."""
        wanted = tuple(phases)
        await wait_for(lambda: self.status(namespace, name).get("phase") in wanted, within,
                       lambda: f"{namespace}/{name} phase {self.status(namespace, name).get('phase')!r}, "
                               f"wanted {wanted}; events: {self.events(namespace)}")
        return self.status(namespace, name)

    async def wait_event(self, namespace: str, text: str, within: float = RELEASE_TIMEOUT) -> str:
        """Wait for an Event in ``namespace`` whose message contains ``text``; returns that message."""
        await wait_for(lambda: any(text in m for m in self.events(namespace)), within,
                       lambda: f"no event with {text!r} in {namespace}: {self.events(namespace)}")
        return next(m for m in self.events(namespace) if text in m)

    def events(self, namespace: str) -> list[str]:
        """The messages of every Event in ``namespace``."""
        return [str(e.get("message")) for e in self.sb.cluster.list("", "events", namespace)]

    def everything(self, namespace: str) -> str:
        """What a tenant of ``namespace`` and the operator can read: its Events, Canary statuses, the whole log and
        what every fake server received."""
        canaries = [c.get("status") for c in self.sb.cluster.list("flagger.app", "canaries", namespace)]
        return "\n".join([json.dumps(self.events(namespace)), json.dumps(canaries), self.controller.log(),
                          *(server.text() for server in self.servers.values())])


async def healthz(port: int, session: aiohttp.ClientSession) -> int:
    """The status of one ``/healthz`` call (within 2 s)."""
    async with session.get(f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
        return resp.status


@contextlib.asynccontextmanager
async def tenancy(tmp: Path, servers: Mapping[str, Handler], *flags: str,
                  env: Mapping[str, str] | None = None) -> AsyncIterator[Tenancy]:
    """A sandbox, the fake servers (named, started on loopback) and a running controller with ``flags``.

    ``env`` values may name a server as ``{server}`` (its ``127.0.0.1:port``).
    """
    started: dict[str, FakeServer] = {}
    try:
        for name, handler in servers.items():
            started[name] = await FakeServer(handler).start()
        hosts = {name: server.url.removeprefix("http://") for name, server in started.items()}
        environment = {key: value.format(**hosts) for key, value in (env or {}).items()}
        async with integration_sandbox(crd_documents()) as sb, \
                controller_process(sb, tmp / "controller.log", *flags, env=environment) as controller:
            yield Tenancy(sb, controller, started)
    finally:
        for server in started.values():
            await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory for the module's controller."""
    return tmp_path_factory.mktemp("security")
