"""Prometheus provider details beyond the shared contract: result shapes, auth forms, retries, config errors."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from flaggerpy.analysis.providers import (
    HttpError,
    MalformedResponse,
    MultipleSeries,
    NaNValue,
    NoData,
    ProviderConfigError,
    Unreachable,
    run_query,
)
from flaggerpy.apis.flagger import MetricTemplateProvider
from tests.unit.test_provider_fake_backend import FakeBackend, Recorded, running_backend
from tests.unit.tlsfakes import self_signed, server_context


def _vector(*values: str) -> dict[str, object]:
    result = [{"metric": {"pod": f"p{i}"}, "value": [1.7e9, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


async def _query(
    backend: FakeBackend,
    session: aiohttp.ClientSession,
    credentials: dict[str, str] | None = None,
    address: str | None = None,
    **provider: object,
) -> float:
    spec = MetricTemplateProvider(type="prometheus", address=address or backend.url, **provider)
    return await run_query("vector(1)", spec, credentials or {}, session=session, timeout=5)


async def test_scalar_results_are_accepted(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "42"]}})
    assert await _query(backend, session) == 42


async def test_nan_counts_as_no_data(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json(_vector("NaN"))
    with pytest.raises(NaNValue) as info:
        await _query(backend, session)
    assert isinstance(info.value, NoData)


async def test_several_series_are_refused_instead_of_picking_one(
    backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    backend.json(_vector("1", "2"))
    with pytest.raises(MultipleSeries, match="2 series"):
        await _query(backend, session)


async def test_a_range_vector_is_refused(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json({"status": "success", "data": {"resultType": "matrix", "result": [{"values": [[1, "1"]]}]}})
    with pytest.raises(MultipleSeries, match="range vector"):
        await _query(backend, session)


async def test_basic_auth_and_template_headers(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json(_vector("1"))
    await _query(
        backend,
        session,
        credentials={"username": "admin", "password": "pa55"},
        headers={"X-Scope-OrgID": ["tenant-a"]},
    )
    assert backend.last.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:pa55").decode()
    assert backend.last.headers["X-Scope-OrgID"] == "tenant-a"


async def test_an_address_with_a_path_prefix_keeps_it(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json(_vector("1"))
    await _query(backend, session, address=backend.url + "/prometheus/")
    assert backend.last.path == "/prometheus/api/v1/query"


async def test_a_bad_query_reports_prometheus_own_message(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.json({"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}, status=400)
    with pytest.raises(HttpError, match='HTTP 400: parse error: unexpected "}"'):
        await _query(backend, session)
    assert len(backend.requests) == 1  # a client error is not retried


async def test_a_briefly_unavailable_backend_is_retried(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    answers = [web.Response(status=503, text="restarting"), web.json_response(_vector("7"))]

    async def handler(_: Recorded) -> web.StreamResponse:
        return answers.pop(0)

    backend.respond(handler)
    assert await _query(backend, session) == 7
    assert len(backend.requests) == 2


async def test_missing_password_in_the_secret_is_a_config_error(
    backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(ProviderConfigError, match="has no key 'password'"):
        await _query(backend, session, credentials={"username": "admin"})
    assert backend.requests == []


async def test_missing_address_is_a_config_error(session: aiohttp.ClientSession) -> None:
    spec = MetricTemplateProvider(type="prometheus")
    with pytest.raises(ProviderConfigError, match=r"spec.provider.address is required"):
        await run_query("vector(1)", spec, {}, session=session, timeout=5)


async def test_a_closed_port_is_unreachable(session: aiohttp.ClientSession) -> None:
    async with running_backend() as gone:
        url = gone.url
    spec = MetricTemplateProvider(type="prometheus", address=url)
    with pytest.raises(Unreachable, match=r"cannot reach http://127\.0\.0\.1"):
        await run_query("vector(1)", spec, {}, session=session, timeout=5)


async def test_insecure_skip_verify_accepts_a_self_signed_certificate(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with running_backend(server_context(*self_signed(tmp_path))) as tls:
        tls.json(_vector("3"))
        strict = MetricTemplateProvider(type="prometheus", address=tls.url)
        with pytest.raises(Unreachable, match="cannot reach https://127"):
            await run_query("vector(1)", strict, {}, session=session, timeout=5)
        lenient = MetricTemplateProvider(type="prometheus", address=tls.url, insecureSkipVerify=True)
        assert await run_query("vector(1)", lenient, {}, session=session, timeout=5) == 3


async def test_a_huge_answer_is_refused_not_buffered(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    chunk = b"x" * (1024 * 1024)

    async def flood(req: Recorded) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req.raw)
        for _ in range(17):
            await resp.write(chunk)
        return resp

    backend.respond(flood)
    with pytest.raises(MalformedResponse, match="larger than 16 MiB"):
        await _query(backend, session)
