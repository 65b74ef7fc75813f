"""A plain kubernetes-asyncio client works against the sandbox unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from flaggerpy.sandbox import Sandbox

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "canaries.flagger.app"},
    "spec": {
        "group": "flagger.app",
        "scope": "Namespaced",
        "names": {"plural": "canaries", "singular": "canary", "kind": "Canary"},
        "versions": [{"name": "v1beta1", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    async with Sandbox(dataplane=False, ready_delay=0.05) as sb:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(sb.kubeconfig_path), client_configuration=cfg)
        async with client.ApiClient(cfg) as api_client:
            yield api_client


async def test_apps_api_create_read_and_readiness(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    }
    created = await apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1
    for _ in range(100):
        dep = await apps.read_namespaced_deployment("web", "default")
        if dep.status and dep.status.ready_replicas == 1:
            break
        await asyncio.sleep(0.02)
    assert dep.status.ready_replicas == 1
    with pytest.raises(ApiException) as err:
        await apps.read_namespaced_deployment("missing", "default")
    assert err.value.status == 404


async def test_custom_objects_and_watch(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    await ext.create_custom_resource_definition(CRD)
    custom = client.CustomObjectsApi(api)
    canary = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo"},
              "spec": {"targetRef": {"name": "podinfo"}}}
    created = await custom.create_namespaced_custom_object("flagger.app", "v1beta1", "default", "canaries", canary)
    await custom.patch_namespaced_custom_object_status(
        "flagger.app", "v1beta1", "default", "canaries", "podinfo", {"status": {"phase": "Initialized"}},
        _content_type="application/merge-patch+json")
    listing = await custom.list_namespaced_custom_object("flagger.app", "v1beta1", "default", "canaries")
    assert listing["items"][0]["status"] == {"phase": "Initialized"}
    w = watch.Watch()
    seen = []
    async with w.stream(custom.list_namespaced_custom_object, "flagger.app", "v1beta1", "default", "canaries",
                        resource_version=created["metadata"]["resourceVersion"], timeout_seconds=2) as stream:
        async for event in stream:
            seen.append((event["type"], event["object"].get("status")))
            break
    assert seen == [("MODIFIED", {"phase": "Initialized"})]
