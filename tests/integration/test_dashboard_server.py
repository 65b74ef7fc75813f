"""The dashboard's server without a browser: many open pages cost the API server nothing more, changes reach every
page, and the server defends the user's credentials (loopback Host only, the page's token for actions, a strict
Content-Security-Policy, bundled assets only)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from flaggerpy.dashboard.hub import HubSettings
from flaggerpy.dashboard.server import DashboardSettings, serve
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, wait_for
from tests.manifests import canary, deployment

STREAMS = 40


async def _events(response: aiohttp.ClientResponse) -> Any:
    """Yield (event, data) from a Server-Sent Events response."""
    name = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


async def _next(stream: Any) -> tuple[str, Any]:
    return await asyncio.wait_for(anext(stream), 10)


def _watches(sandbox: Sandbox) -> int:
    return sum(verbs.get("watch", 0) for verbs in sandbox.counters.snapshot().values())


def _api_reads(sandbox: Sandbox) -> int:
    return sum(n for verbs in sandbox.counters.snapshot().values() for verb, n in verbs.items()
               if verb in ("list", "watch", "get"))


async def test_many_pages_share_one_informer_set_and_all_see_a_change(sandbox: Sandbox, cluster: Cluster) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    settings = DashboardSettings(kubeconfig=str(sandbox.kubeconfig_path), port=0,
                                 hub=HubSettings(flush_interval=0.02))
    async with serve(settings) as dash, aiohttp.ClientSession() as http:
        # Listed; once the four informers' watches are open too, the dashboard's reads are done.
        await wait_for(lambda: _watches(sandbox) == 4, 10, lambda: f"watches: {sandbox.counters.snapshot()}")
        before = _api_reads(sandbox)
        responses = [await http.get(f"{dash.url}/api/stream") for _ in range(STREAMS)]
        responses.append(await http.get(f"{dash.url}/api/stream/test/podinfo"))
        streams = [_events(r) for r in responses]
        for stream in streams[:-1]:
            name, data = await _next(stream)
            assert name == "snapshot" and [r["key"] for r in data["rows"]] == ["test/podinfo"]
        name, page = await _next(streams[-1])
        assert name == "page" and page["row"]["phase"] == "Unknown"
        assert dash.hub.subscribers == STREAMS + 1

        await sandbox.cluster.patch_status("flagger.app", "canaries", "test", "podinfo",
                                           {"phase": "Progressing", "canaryWeight": 30, "failedChecks": 1})
        for stream in streams[:-1]:
            name, data = await _next(stream)
            assert name == "patch" and data["upsert"][0]["weight"] == 30 and data["upsert"][0]["failedChecks"] == 1
        name, page = await _next(streams[-1])
        assert page["row"]["phase"] == "Progressing" and page["actions"]["abort"] is True
        # Forty-one pages opened and updated: not one request more to the API server.
        assert _api_reads(sandbox) == before
        for response in responses:
            response.close()


async def test_the_server_answers_only_its_loopback_name_and_actions_need_the_page_token(
    sandbox: Sandbox, cluster: Cluster,
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary())
    async with serve(DashboardSettings(kubeconfig=str(sandbox.kubeconfig_path), port=0)) as dash, \
            aiohttp.ClientSession() as http:
        port = dash.app.port
        async with http.get(f"{dash.url}/", headers={"Host": f"evil.example:{port}"}) as rebound:
            assert rebound.status == 421
        async with http.get(f"{dash.url}/") as index:
            assert index.status == 200
            page = await index.text()
            assert "default-src 'self'" in index.headers["Content-Security-Policy"]
            assert dash.app.token in page and "http" not in page.replace(dash.url, "")
        for asset in ("app.js", "charts.js", "app.css"):
            async with http.get(f"{dash.url}/static/{asset}") as response:
                body = await response.text()
                # Self-contained: nothing is fetched from anywhere else.
                assert response.status == 200 and "https://" not in body and "//cdn" not in body
        async with http.get(f"{dash.url}/static/..%2Fserver.py") as escape:
            assert escape.status == 404
        async with http.post(f"{dash.url}/api/canaries/test/podinfo/pause") as no_token:
            assert no_token.status == 400
        assert not cluster.canary()["spec"].get("suspend")
        headers = {"X-Dashboard-Token": dash.app.token}
        async with http.post(f"{dash.url}/api/canaries/test/podinfo/pause", headers=headers) as paused:
            assert paused.status == 200 and "paused" in (await paused.json())["message"]
        assert cluster.canary()["spec"]["suspend"] is True
        async with http.post(f"{dash.url}/api/canaries/test/podinfo/abort", headers=headers) as refused:
            assert refused.status == 409 and "is paused" in (await refused.json())["message"]
        async with http.post(f"{dash.url}/api/canaries/test/nothere/resume", headers=headers) as missing:
            assert missing.status == 409 and 'canary "nothere" not found' in (await missing.json())["message"]


async def test_a_cluster_without_the_canary_crd_is_said_so() -> None:
    async with Sandbox(workloads=False, dataplane=False) as sb, \
            serve(DashboardSettings(kubeconfig=str(sb.kubeconfig_path), port=0)) as dash, \
            aiohttp.ClientSession() as http, http.get(f"{dash.url}/api/stream") as response:
        name, data = await _next(_events(response))
        assert name == "snapshot" and data["rows"] == []
        assert "does not serve canaries.flagger.app/v1beta1" in data["scope"]["denied"]["canaries"]



async def test_a_watch_the_user_may_not_open_makes_the_pages_say_they_are_not_live(
    sandbox: Sandbox, cluster: Cluster, tmp_path: Path,
) -> None:
    await cluster.create("rbac.authorization.k8s.io", "clusterroles", {
        "metadata": {"name": "no-event-watch"},
        "rules": [{"apiGroups": ["flagger.app", "gateway.networking.k8s.io", "apps"],
                   "resources": ["canaries", "httproutes", "deployments"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]})
    await cluster.create("rbac.authorization.k8s.io", "clusterrolebindings", {
        "metadata": {"name": "no-event-watch"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "no-event-watch"},
        "subjects": [{"kind": "User", "name": "lister"}]})
    # Events may be listed, not watched.
    kubeconfig = sandbox.user_kubeconfig(tmp_path / "lister", "lister-token", "lister")
    settings = DashboardSettings(kubeconfig=str(kubeconfig), port=0,
                                 watch=WatchSettings(backoff_initial=0.05, backoff_max=0.2, backoff_jitter=0.05))
    async with serve(settings) as dash, aiohttp.ClientSession() as http, \
            http.get(f"{dash.url}/api/stream") as response:
        stream = _events(response)
        name, data = await _next(stream)
        assert name == "snapshot"
        if not data["health"]:
            name, data = await _next(stream)
            assert name == "health"
        assert list(data if name == "health" else data["health"]) == ["events"]
        assert "refused the watch" in (data if name == "health" else data["health"])["events"]
