"""Real HTTP listeners for the sandbox's pods: at podIP:containerPort, shaped by annotations, with the pods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flaggerpy.sandbox import READY_DELAY_ANNOTATION, Sandbox
from flaggerpy.sandbox.controllers.pods import PodSettings
from flaggerpy.sandbox.gateway.backends import PodBackends, pod_state
from flaggerpy.sandbox.gateway.kubeclient import load_kubeconfig
from tests.integration.conftest import wait_for


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.2, backends=True,
                       pod_settings=PodSettings(termination_delay=0.2)) as sandbox:
        yield sandbox


def deployment(name: str, version: str, annotations: dict[str, str] | None = None,
               replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"version": version, **(annotations or {})}},
                "spec": {"containers": [{"name": "app", "image": f"podinfo:{version}",
                                         "ports": [{"name": "http", "containerPort": 9898}]}]},
            },
        },
    }


def pods(sb: Sandbox, app: str) -> list[dict[str, Any]]:
    return [p for p in sb.cluster.list("", "pods", "default") if p["metadata"]["labels"].get("app") == app]


def serving(sb: Sandbox, app: str) -> set[str]:
    assert sb.backends is not None
    return {s.name for s in sb.backends.serving().values() if s.name.startswith(f"{app}-") and s.ready}


async def get(session: aiohttp.ClientSession, ip: str) -> tuple[int, dict[str, str]]:
    async with session.get(f"http://{ip}:9898/") as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_ready_pods_answer_at_their_ip_with_their_name_and_revision(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment("web", "1", {"sandbox.flaggerpy.io/error-rate": "1"}))
    await wait_for(lambda: len(serving(sb, "web")) == 2, describe=lambda: f"serving: {serving(sb, 'web')}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for pod in pods(sb, "web"):
            status, headers = await get(session, pod["status"]["podIP"])
            assert status == 500  # error-rate 1: every answer fails
            assert headers["X-Pod"] == pod["metadata"]["name"]
            assert headers["X-Revision"] == pod["metadata"]["labels"]["pod-template-hash"]
        old_ips = {p["status"]["podIP"] for p in pods(sb, "web")}

        # A new revision: its pods answer once ready, the old pods' listeners go with the old pods.
        await sb.cluster.update("apps", "deployments", deployment("web", "2", {READY_DELAY_ANNOTATION: "0.3s"}))
        await wait_for(lambda: len(pods(sb, "web")) == 2 and
                       not {p["status"]["podIP"] for p in pods(sb, "web")} & old_ips and
                       len(serving(sb, "web")) == 2 and
                       {s.ip for s in sb.backends.serving().values()}.isdisjoint(old_ips),  # type: ignore[union-attr]
                       describe=lambda: f"serving: {sb.backends.serving() if sb.backends else None}")
        for pod in pods(sb, "web"):
            status, headers = await get(session, pod["status"]["podIP"])
            assert status == 200 and headers["X-Pod"] == pod["metadata"]["name"]
        for ip in old_ips:
            with pytest.raises(aiohttp.ClientConnectionError):
                await get(session, ip)
    answered = {(row["pod"], row["code"], row["ready"]) for row in sb.backends.stats()["pods"]}  # type: ignore[union-attr]
    assert all(ready for _, _, ready in answered)  # no answer came from a pod that was not ready


async def test_backends_follow_any_cluster_from_a_kubeconfig_and_never_leave_loopback() -> None:
    # The runner the real-cluster tests use: its own client, from a kubeconfig, against any API server.
    runner = PodBackends()
    async with Sandbox(dataplane=False, ready_delay=0.05, pods=True) as sb:
        await sb.cluster.create("apps", "deployments", deployment("api", "1", replicas=1))
        task = asyncio.create_task(runner.run(load_kubeconfig(sb.kubeconfig_path)))
        try:
            await wait_for(lambda: any(s.name.startswith("api-") and s.ready for s in runner.serving().values()))
            [pod] = pods(sb, "api")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                status, headers = await get(session, pod["status"]["podIP"])
            assert status == 200 and headers["X-Pod"] == pod["metadata"]["name"]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert not runner.serving()  # listeners close with the runner
    outside = {"metadata": {"name": "x", "namespace": "default"}, "status": {"podIP": "10.1.2.3"},
               "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}
    assert pod_state(outside, 1.0) is None
