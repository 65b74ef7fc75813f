"""The sandbox's Prometheus query API over HTTP: Prometheus's JSON for answers and for errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flaggerpy.sandbox.promql.server import PREFIX, PromQLServer, PromQLSettings

EXPOSITION = 'requests_total{code="200"} 10\nrequests_total{code="500"} 2\n'


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    """A client of an app serving one PromQLServer that has scraped EXPOSITION once at t=1000."""
    server = PromQLServer(lambda: EXPOSITION, clock=lambda: 1000.0)
    server.scrape()
    app = web.Application()
    app.add_routes(server.routes())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_get_instant_query_answers_a_vector(client: TestClient) -> None:
    resp = await client.get(f"{PREFIX}/api/v1/query", params={"query": "sum(requests_total)"})
    assert resp.status == 200
    assert await resp.json() == {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1000.0, "12"]}]},
    }


async def test_post_form_query_at_a_time(client: TestClient) -> None:
    resp = await client.post(f"{PREFIX}/api/v1/query",
                             data={"query": 'requests_total{code="500"}', "time": "1970-01-01T00:16:40Z"})
    body = await resp.json()
    assert resp.status == 200
    [series] = body["data"]["result"]
    assert series["metric"]["code"] == "500" and series["metric"]["__name__"] == "requests_total"
    assert series["value"] == [1000.0, "2"]


async def test_before_the_first_scrape_there_is_nothing(client: TestClient) -> None:
    resp = await client.get(f"{PREFIX}/api/v1/query", params={"query": "requests_total", "time": "900"})
    assert (await resp.json())["data"]["result"] == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, 'invalid parameter "query"'),
        ({"query": "sum(requests_total"}, "parse error"),
        ({"query": "quantile(0.9, requests_total)"}, "aggregation quantile() is not supported"),
        ({"query": "requests_total", "time": "soon"}, 'invalid parameter "time"'),
    ],
)
async def test_bad_requests_answer_bad_data_naming_the_problem(
    client: TestClient, params: dict[str, str], fragment: str
) -> None:
    resp = await client.get(f"{PREFIX}/api/v1/query", params=params)
    body = await resp.json()
    assert resp.status == 400
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert fragment in body["error"]


async def test_impossible_matching_is_an_execution_error(client: TestClient) -> None:
    resp = await client.get(f"{PREFIX}/api/v1/query", params={"query": "requests_total / on() requests_total"})
    body = await resp.json()
    assert resp.status == 422
    assert body["errorType"] == "execution"
    assert "many-to-many matching not allowed" in body["error"]


async def test_ready_endpoint(client: TestClient) -> None:
    resp = await client.get(f"{PREFIX}/-/ready")
    assert resp.status == 200


async def test_scraping_starts_with_the_first_query_and_idles_without_queries() -> None:
    server = PromQLServer(lambda: EXPOSITION, PromQLSettings(scrape_interval=0.01, idle_after=0.05))
    task = asyncio.create_task(server.run(None))
    try:
        await asyncio.sleep(0.03)
        assert not server.active and len(server.store) == 0
        assert server.query("requests_total")["result"] == []
        await asyncio.sleep(0.03)
        assert len(server.store) == 2
        await asyncio.sleep(0.1)
        assert not server.active
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
