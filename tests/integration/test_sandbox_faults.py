"""Fault injection (in-process and over HTTP) and request counters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from flaggerpy.sandbox import Rule, Sandbox
from tests.integration.conftest import wait_for

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, workloads=False) as sandbox:
        yield sandbox


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sb.url) as session:
        yield session


async def test_counters_count_requests_by_verb_and_resource(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.post(CM, json={"metadata": {"name": "a"}}):
        pass
    for _ in range(3):
        async with http.get(f"{CM}/a"):
            pass
    async with http.get(CM):
        pass
    assert sb.counters.get("get", "configmaps") == 3
    assert sb.counters.get("create") == 1
    assert sb.counters.reads("configmaps") == 4
    async with http.get("/sandbox/counters") as resp:
        assert await resp.json() == {"configmaps": {"create": 1, "get": 3, "list": 1}}
    async with http.delete("/sandbox/counters"):
        pass
    assert sb.counters.get() == 0


async def test_error_rate_by_verb_and_resource(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults.errors.append(Rule(verb="create", resource="configmaps", rate=1.0, code=503))
    async with http.post(CM, json={"metadata": {"name": "a"}}) as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["reason"] == "ServiceUnavailable" and "injected" in body["message"]
    async with http.get(CM) as resp:
        assert resp.status == 200, "other verbs are unaffected"
    sb.faults.clear()
    async with http.post(CM, json={"metadata": {"name": "a"}}) as resp:
        assert resp.status == 201


async def test_faults_over_http_with_validation(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.put("/sandbox/faults", json={"conflicts": [{"verb": "patch", "resource": "configmaps"}]}) as r:
        assert r.status == 200
    await sb.cluster.create("", "configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    async with http.patch(f"{CM}/a", json={"data": {"k": "v"}},
                          headers={"Content-Type": "application/merge-patch+json"}) as resp:
        assert resp.status == 409 and (await resp.json())["reason"] == "Conflict"
    async with http.put("/sandbox/faults", json={"errors": [{"rate": 2}]}) as resp:
        assert resp.status == 400
        assert "faults.errors[0].rate" in (await resp.json())["message"]
    async with http.delete("/sandbox/faults") as resp:
        assert (await resp.json())["conflicts"] == []


async def test_latency_holds_requests(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults.latency.append(Rule(verb="list", seconds=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(CM) as resp:
        assert resp.status == 200
    assert loop.time() - started >= 0.2


async def test_forced_gone_and_dropped_watches(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults.force_gone("configmaps")
    async with http.get(f"{CM}?watch=true&resourceVersion=1") as resp:
        lines = [json.loads(line) async for line in resp.content]
    assert lines[0]["type"] == "ERROR" and lines[0]["object"]["code"] == 410

    async def read_until_closed() -> int:
        async with http.get(f"{CM}?watch=true") as resp:
            return len([line async for line in resp.content])

    reader = asyncio.create_task(read_until_closed())
    # Drop only once the watch is served: a drop before it opens would leave it open (and the reader waiting).
    server = sb.server
    assert server is not None
    await wait_for(lambda: server.open_watches >= 1, 5, lambda: "the watch was never served")
    async with http.put("/sandbox/faults", json={"drop_watches": True}) as resp:
        assert resp.status == 200
    assert await asyncio.wait_for(reader, 5) == 0


async def test_watches_dropped_periodically(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults.drop_watches_every = 0.1

    async def read_until_closed() -> int:
        async with http.get(f"{CM}?watch=true&resourceVersion=0") as resp:
            return len([line async for line in resp.content])

    assert await asyncio.wait_for(read_until_closed(), 5) == 0
