"""Limits a real API server enforces: total annotation size, request body size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with Sandbox(dataplane=False, workloads=False) as sb, aiohttp.ClientSession(base_url=sb.url) as session:
        yield session


def configmap(name: str, annotation: int = 0, data: int = 0) -> dict:
    return {"metadata": {"name": name, "annotations": {"a": "x" * annotation}}, "data": {"d": "y" * data}}


async def test_annotations_over_256_kib_in_total_are_refused(http: aiohttp.ClientSession) -> None:
    # Key and value count: 1 + 262143 bytes is the most that fits.
    async with http.post(CM, json=configmap("fits", 256 * 1024 - 1)) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post(CM, json=configmap("over", 256 * 1024)) as resp:
        status = await resp.json()
    assert resp.status == 422 and status["reason"] == "Invalid"
    assert status["message"].endswith("metadata.annotations: Too long: must have at most 262144 bytes")
    # Also on update: an object cannot grow past the limit.
    async with http.patch(f"{CM}/fits", json={"metadata": {"annotations": {"b": "z"}}},
                          headers={"Content-Type": "application/merge-patch+json"}) as resp:
        assert resp.status == 422


async def test_request_bodies_over_the_api_server_limit_are_refused(http: aiohttp.ClientSession) -> None:
    async with http.post(CM, json=configmap("big", data=3 * 1024 * 1024)) as resp:
        status = await resp.json()
    assert resp.status == 413 and status["kind"] == "Status" and status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == "Request entity too large: limit is 3145728"
    async with http.post(CM, json=configmap("large-but-fine", data=1024 * 1024)) as resp:
        assert resp.status == 201


async def test_nesting_beyond_what_the_sandbox_can_process_is_a_clear_400(http: aiohttp.ClientSession) -> None:
    depth = 5000
    body = '{"metadata":{"name":"deep"},"data":{"k":"v"},"x":' + '{"a":' * depth + "{}" + "}" * depth + "}"
    async with http.post(CM, data=body, headers={"Content-Type": "application/json"}) as resp:
        status = await resp.json()
    assert resp.status == 400 and "nested deeper than the sandbox can process" in status["message"]
