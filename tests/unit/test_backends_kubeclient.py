"""The pod backends' own client against a TLS API server with a bearer token, as a real kube-apiserver serves:
kubeconfig loading (CA file or data, token), LIST then WATCH, a 410 that relists, and refusals it names."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from flaggerpy.sandbox.gateway.backends import PodBackends
from flaggerpy.sandbox.gateway.kubeclient import KubeconfigError, load_kubeconfig
from tests.integration.conftest import wait_for
from tests.ports import free_port
from tests.unit.tlsfakes import self_signed, server_context

TOKEN = "s3cret-token"
POD_IP = "127.243.0.7"  # a loopback address no sandbox's pod range hands out


def pod(version: str, port: int) -> dict[str, Any]:
    return {"metadata": {"name": "web-abc-1", "namespace": "default", "uid": "u1", "resourceVersion": version,
                         "labels": {"pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "app", "ports": [{"containerPort": port}]}]},
            "status": {"podIP": POD_IP, "conditions": [{"type": "Ready", "status": "True"}]}}


class FakeApiServer:
    """Pods over TLS: one LIST, a watch answering 410 first, then one that stays open."""

    def __init__(self, pod_port: int) -> None:
        self.pod_port = pod_port
        self.lists = 0
        self.watches = 0
        self.unauthorized = 0

    def app(self) -> web.Application:
        async def pods(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.unauthorized += 1
                return web.json_response({"kind": "Status", "code": 401}, status=401)
            if request.query.get("watch") != "true":
                self.lists += 1
                return web.json_response({"items": [pod("5", self.pod_port)], "metadata": {"resourceVersion": "5"}})
            self.watches += 1
            if self.watches == 1:
                return web.json_response({"kind": "Status", "code": 410}, status=410)
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(json.dumps({"type": "BOOKMARK", "object": {"metadata": {
                "resourceVersion": "6"}}}).encode() + b"\n")
            await asyncio.sleep(30)
            return response

        app = web.Application()
        app.router.add_get("/api/v1/pods", pods)
        return app


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[FakeApiServer, str, Path]]:
    cert, key = self_signed(tmp_path)
    fake = FakeApiServer(free_port())
    runner = web.AppRunner(fake.app(), shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(cert, key)).start()
    try:
        yield fake, f"https://127.0.0.1:{port}", cert
    finally:
        await runner.cleanup()


def kubeconfig(tmp_path: Path, server: str, cluster: dict[str, Any], token: str = TOKEN) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "real",
        "clusters": [{"name": "real", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "real", "context": {"cluster": "real", "user": "admin"}}],
    }))
    return path


async def test_backends_serve_the_pods_of_a_tls_api_server(api: tuple[FakeApiServer, str, Path],
                                                           tmp_path: Path) -> None:
    fake, server, cert = api
    ca_data = base64.b64encode(cert.read_bytes()).decode()
    endpoint = load_kubeconfig(kubeconfig(tmp_path, server, {"certificate-authority-data": ca_data}))
    runner = PodBackends()
    task = asyncio.create_task(runner.run(endpoint))
    try:
        await wait_for(lambda: bool(runner.serving()) and fake.lists >= 2, 10)
        # The first watch said 410: the runner listed again and kept serving the pod.
        assert fake.lists == 2 and fake.watches >= 2 and fake.unauthorized == 0
        async with aiohttp.ClientSession() as session, session.get(f"http://{POD_IP}:{fake.pod_port}/") as resp:
            assert resp.status == 200 and resp.headers["X-Pod"] == "web-abc-1" and resp.headers["X-Revision"] == "abc"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_kubeconfig_problems_name_the_file_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="server: an http"):
        load_kubeconfig(kubeconfig(tmp_path, "ftp://example", {}))
    with pytest.raises(KubeconfigError, match="no entry named 'other'"):
        load_kubeconfig(kubeconfig(tmp_path, "https://127.0.0.1:1", {}), context="other")
    with pytest.raises(KubeconfigError, match="TLS material"):
        load_kubeconfig(kubeconfig(tmp_path, "https://127.0.0.1:1", {"certificate-authority": "/nonexistent"}))


def test_the_backends_command_names_an_unusable_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flaggerpy.cli import main

    assert main(["sandbox", "backends", "--kubeconfig", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flaggerpy sandbox backends: --kubeconfig: ") and "cannot read kubeconfig" in err
