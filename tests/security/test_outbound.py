"""Tenants' addresses against a running controller: nothing the controller holds, or can reach in a tenant's name,
comes back through a MetricTemplate address, a redirect, a success answer, the controller's cloud identity or a
webhook URL's query."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.security.conftest import (
    CONTROLLER_AWS_KEY_ID,
    CONTROLLER_AWS_SECRET,
    CONTROLLER_GOOGLE_TOKEN,
    METADATA_SECRET,
    Tenancy,
    metadata_service,
    tenancy,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/controller-role"
HOOK_TOKEN = "hook-query-token-5e4d3c"


def one_check(template: str) -> dict[str, object]:
    """An analysis with one templated metric, failing the release at its first failed check."""
    return {"interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 10,
            "metrics": [{"name": "probe", "templateRef": {"name": template}, "thresholdRange": {"min": 0}}]}


async def attacker(request: web.Request) -> web.StreamResponse:
    """The tenant's own server: it redirects to the metadata service and collects whatever it is sent."""
    if request.path.startswith("/redirect"):
        raise web.HTTPFound(request.query["to"])
    return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})


@contextlib.asynccontextmanager
async def garbage_http() -> AsyncIterator[int]:
    """A TCP server on loopback that answers anything with bytes that are not HTTP; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"NOT-HTTP garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(module_tmp: Path) -> AsyncIterator[Tenancy]:
    """A controller whose environment holds AWS keys and whose metadata service hands out a Google token."""
    env = {"GCE_METADATA_HOST": "{metadata}", "AWS_ACCESS_KEY_ID": CONTROLLER_AWS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": CONTROLLER_AWS_SECRET}
    async with tenancy(module_tmp, {"metadata": metadata_service, "attacker": attacker}, env=env) as t:
        yield t


async def test_a_fragment_in_the_address_is_refused_naming_the_field(tenants: Tenancy) -> None:
    ns = "tenant-fragment"
    metadata = tenants.servers["metadata"]
    await tenants.namespace(ns)
    # The '#' turns the query path the provider appends into a fragment: the request would fetch the credentials.
    await tenants.template(ns, "steal", {"type": "prometheus", "address": metadata.url + CREDENTIALS_PATH + "#"})
    await tenants.release(ns, one_check("steal"))
    message = await tenants.wait_event(ns, "Metric query failed for probe")
    assert "spec.provider.address must not contain a fragment" in message
    await tenants.wait_phase(ns, "podinfo", ("Failed",))
    assert not [s for s in metadata.seen if s.path == CREDENTIALS_PATH]
    assert METADATA_SECRET not in tenants.everything(ns)


async def test_redirects_are_not_followed(tenants: Tenancy) -> None:
    ns = "tenant-redirect"
    metadata = tenants.servers["metadata"]
    before = len(metadata.seen)
    await tenants.namespace(ns)
    address = f"{tenants.servers['attacker'].url}/redirect?to={metadata.url}{CREDENTIALS_PATH}%3F"
    await tenants.template(ns, "bounce", {"type": "prometheus", "address": address})
    await tenants.release(ns, one_check("bounce"))
    message = await tenants.wait_event(ns, "Metric query failed for probe")
    assert "redirect, which is not followed" in message
    assert len(metadata.seen) == before
    assert METADATA_SECRET not in tenants.everything(ns)


async def test_a_success_answer_is_described_never_echoed(tenants: Tenancy) -> None:
    ns = "tenant-echo"
    await tenants.namespace(ns)
    # Run from a kubeconfig, loopback is allowed: the metadata service answers, and its answer makes no sense.
    await tenants.template(ns, "echo", {"type": "prometheus", "address": tenants.servers["metadata"].url})
    await tenants.release(ns, one_check("echo"))
    message = await tenants.wait_event(ns, "Metric query failed for probe")
    assert "not shown" in message
    assert METADATA_SECRET not in tenants.everything(ns)


async def test_the_controller_google_identity_never_goes_to_a_tenant_address(tenants: Tenancy) -> None:
    ns = "tenant-stackdriver"
    await tenants.namespace(ns)
    await tenants.template(ns, "gcp", {"type": "stackdriver", "address": tenants.servers["attacker"].url})
    await tenants.release(ns, one_check("gcp"))
    message = await tenants.wait_event(ns, "Metric query failed for probe")
    assert "serviceAccountKey" in message
    assert CONTROLLER_GOOGLE_TOKEN not in tenants.everything(ns)
    assert not [s for s in tenants.servers["metadata"].seen if "service-accounts" in s.path]


async def test_the_controller_aws_identity_never_signs_for_a_tenant_address(tenants: Tenancy) -> None:
    ns = "tenant-cloudwatch"
    await tenants.namespace(ns)
    await tenants.template(ns, "aws", {"type": "cloudwatch", "region": "us-east-1",
                                       "address": tenants.servers["attacker"].url},
                           query='[{"Id": "q", "Expression": "1"}]')
    await tenants.release(ns, one_check("aws"))
    message = await tenants.wait_event(ns, "Metric query failed for probe")
    assert "spec.provider.secretRef is required" in message
    everything = tenants.everything(ns)
    assert CONTROLLER_AWS_KEY_ID not in everything
    assert CONTROLLER_AWS_SECRET not in everything


async def test_a_webhook_url_query_stays_out_of_events_and_logs(tenants: Tenancy) -> None:
    ns = "tenant-hook"
    await tenants.namespace(ns)
    async with garbage_http() as port:
        analysis = {"interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 10,
                    "webhooks": [{"name": "check", "type": "rollout",
                                  "url": f"http://127.0.0.1:{port}/hook?token={HOOK_TOKEN}"}]}
        await tenants.release(ns, analysis)
        message = await tenants.wait_event(ns, "external check check failed")
        await tenants.wait_phase(ns, "podinfo", ("Failed",))
    assert "request failed" in message
    assert HOOK_TOKEN not in tenants.everything(ns)
