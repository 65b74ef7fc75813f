"""The kube client still honours HTTP(S)_PROXY/NO_PROXY now that it resolves the proxy once, not per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, env_proxy
from flaggerpy.kube.errors import NotFound

API = "http://api.cluster.invalid:6443"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
              "all_proxy")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A forward proxy stand-in: answers every request with a Kubernetes 404 and remembers the Host asked for."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                  "code": 404, "message": "deployments.apps \"x\" not found"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _kubeconfig(path: Path) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": API}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


async def test_requests_go_through_the_proxy_named_in_the_environment(
    clean_env: pytest.MonkeyPatch, proxy: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = proxy
    clean_env.setenv("HTTP_PROXY", url)
    async with KubeClient(_kubeconfig(tmp_path / "kubeconfig")) as kube:
        with pytest.raises(NotFound):
            await kube.resource(res.DEPLOYMENTS).get("x", "default")
    assert [host.split(":")[0] for host in seen] == ["api.cluster.invalid"]


def test_no_proxy_and_no_environment_mean_a_direct_connection(clean_env: pytest.MonkeyPatch) -> None:
    assert env_proxy(API) is None
    clean_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert env_proxy("https://api.example:6443") == "http://proxy.example:3128"
    assert env_proxy(API) is None  # only HTTPS is proxied
    clean_env.setenv("NO_PROXY", "api.example")
    assert env_proxy("https://api.example:6443") is None
