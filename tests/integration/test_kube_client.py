"""KubeClient against the sandbox: CRUD on plain dicts, typed errors, retries through injected 5xx/429 faults."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from flaggerpy.kube.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES
from flaggerpy.kube.settings import ClientSettings
from flaggerpy.sandbox import Rule, Sandbox

FAST = ClientSettings(retry_attempts=12, backoff_initial=0.001, backoff_max=0.01, backoff_jitter=0.0)


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Sandbox, KubeClient]]:
    sandbox = Sandbox(workloads=False, dataplane=False)
    async with sandbox as sb, KubeClient(str(sb.kubeconfig_path), settings=FAST) as kube:
        await kube.create(NAMESPACES, {"metadata": {"name": "apps"}})
        yield sb, kube


def deployment(name: str) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "podinfo:6.0.0"}]},
            },
        },
    }


async def test_crud_patches_and_typed_errors() -> None:
    async with cluster() as (_, kube):
        deployments = kube.resource(DEPLOYMENTS)
        created = await deployments.create(deployment("web"))
        with pytest.raises(AlreadyExists):
            await deployments.create(deployment("web"))
        patched = await deployments.patch(
            "web",
            "apps",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "podinfo:6.1.0"}]}}}},
            patch_type="strategic",
        )
        assert patched["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": "podinfo:6.1.0"}]
        scaled = await deployments.patch(
            "web", "apps", [{"op": "replace", "path": "/spec/replicas", "value": 0}], patch_type="json"
        )
        assert scaled["spec"]["replicas"] == 0
        with pytest.raises(Conflict):
            await deployments.replace(created)  # stale resourceVersion
        status = await deployments.patch_status("web", "apps", {"status": {"observedGeneration": 7}})
        assert status["status"]["observedGeneration"] == 7
        items, rv = await deployments.list("apps", label_selector="app=web")
        assert [i["metadata"]["name"] for i in items] == ["web"] and rv
        await deployments.delete("web", "apps", propagation_policy="Background")
        with pytest.raises(NotFound):
            await deployments.get("web", "apps")


async def test_list_follows_pagination() -> None:
    async with cluster() as (_, kube):
        small_pages = KubeClient(api_client=kube.api_client, settings=ClientSettings(list_page_size=7))
        for i in range(20):
            await kube.create(CONFIGMAPS, {"metadata": {"name": f"c{i:02d}", "namespace": "apps"}})
        items, rv = await small_pages.list(CONFIGMAPS, "apps")
        assert sorted(i["metadata"]["name"] for i in items) == [f"c{i:02d}" for i in range(20)]
        assert rv


@pytest.mark.parametrize("code", [500, 503, 429])
async def test_retries_through_injected_server_errors(code: int) -> None:
    async with cluster() as (sb, kube):
        answers: list[int] = []
        kube.add_observer(lambda verb, resource, status, seconds: answers.append(status))
        await kube.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "apps"}, "data": {"k": "v"}})
        sb.faults.errors.append(Rule(verb="get", resource="configmaps", rate=0.3, code=code))
        for _ in range(30):
            obj = await kube.get(CONFIGMAPS, "cfg", "apps")
            assert obj["data"] == {"k": "v"}
        assert code in answers, "some requests must have hit the fault and been retried"
        assert answers.count(200) == 30, "every get succeeded in the end"


async def test_gives_up_after_the_retry_budget() -> None:
    async with cluster() as (sb, kube):
        sb.faults.errors.append(Rule(verb="list", resource="configmaps", rate=1.0, code=503))
        before = sb.counters.get("list", "configmaps")
        with pytest.raises(ApiError) as info:
            await kube.list(CONFIGMAPS, "apps")
        assert info.value.status == 503
        assert sb.counters.get("list", "configmaps") - before == FAST.retry_attempts
