"""``--no-cross-namespace-refs`` holds for every reference a Canary follows: a tenant naming another namespace's
MetricTemplate or AlertProvider gets a refusal, and neither object, nor the Secret beside it, is ever used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.security.conftest import Tenancy, tenancy

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLATFORM_TOKEN = "platform-prometheus-token-91a2"
PLATFORM_CHAT = "platform-chat-secret-path-3b4c"


async def collector(_: web.Request) -> web.StreamResponse:
    """The platform team's Prometheus and chat service: both answer as if all were well."""
    return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(module_tmp: Path) -> AsyncIterator[Tenancy]:
    async with tenancy(module_tmp, {"platform": collector}, "--no-cross-namespace-refs") as t:
        yield t


async def test_references_to_another_namespace_are_refused_with_their_secrets(tenants: Tenancy) -> None:
    platform = tenants.servers["platform"]
    await tenants.namespace("platform")
    await tenants.secret("platform", "prom-auth", {"token": PLATFORM_TOKEN})
    await tenants.template("platform", "shared", {"type": "prometheus", "address": platform.url,
                                                  "secretRef": {"name": "prom-auth"}})
    await tenants.secret("platform", "chat", {"address": f"{platform.url}/{PLATFORM_CHAT}"})
    await tenants.apply("flagger.app", "alertproviders", {
        "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
        "metadata": {"name": "chat", "namespace": "platform"},
        "spec": {"type": "slack", "secretRef": {"name": "chat"}},
    })
    ns = "tenant-borrower"
    await tenants.namespace(ns)
    await tenants.release(ns, {
        "interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 25,
        "metrics": [{"name": "borrowed", "templateRef": {"name": "shared", "namespace": "platform"},
                     "thresholdRange": {"min": 0}}],
        "alerts": [{"name": "chat", "severity": "info", "providerRef": {"name": "chat", "namespace": "platform"}}],
    })
    message = await tenants.wait_event(ns, "Metric query failed for borrowed")
    assert "-no-cross-namespace-refs" in message
    await tenants.wait_phase(ns, "podinfo", ("Failed",))
    assert platform.seen == []
    everything = tenants.everything(ns)
    assert PLATFORM_TOKEN not in everything
    assert PLATFORM_CHAT not in everything
    assert "providerRef to another namespace refused" in tenants.controller.log()
