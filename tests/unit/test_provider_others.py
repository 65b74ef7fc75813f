"""Provider details beyond the shared contract: SigV4 vectors, CloudWatch query flattening, SignalFlow endpoints,
Google token caching, InfluxDB CSV, the factory."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from flaggerpy.analysis.providers import (
    MultipleSeries,
    ProviderConfigError,
    get_query,
    run_query,
)
from flaggerpy.analysis.providers.cloudwatch import credentials_from, flatten_queries
from flaggerpy.analysis.providers.gcp_auth import forget_tokens, metadata_project, metadata_token
from flaggerpy.analysis.providers.influxdb import parse_annotated_csv
from flaggerpy.analysis.providers.sigv4 import AwsCredentials, sign
from flaggerpy.analysis.providers.splunk import stream_address
from flaggerpy.apis.flagger import MetricTemplateProvider
from flaggerpy.outbound import ambient_credentials
from tests.unit.test_provider_contract import STACKDRIVER
from tests.unit.test_provider_fake_backend import FakeBackend, Recorded

_AWS_EXAMPLE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
_AWS_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        # AWS's published SigV4 test suite: get-vanilla and get-vanilla-query-order-key-case.
        ({}, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ({"Param2": "value2", "Param1": "value1"}, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ],
)
def test_sigv4_matches_aws_test_suite(query: dict[str, str], signature: str) -> None:
    headers = sign(
        "GET",
        "example.amazonaws.com",
        "/",
        query,
        {},
        b"",
        credentials=_AWS_EXAMPLE,
        region="us-east-1",
        service="service",
        now=_AWS_TIME,
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_sigv4_signs_the_session_token_of_temporary_credentials() -> None:
    creds = AwsCredentials("AKID", "very-private", session_token="FwoGZXIvYXdzE")
    headers = sign("POST", "h", "/", {}, {}, b"", credentials=creds, region="r", service="s", now=_AWS_TIME)
    assert headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzE"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in headers["Authorization"]
    assert "very-private" not in repr(creds)


def test_cloudwatch_query_fields_accept_any_letter_case_like_flagger() -> None:
    fields = flatten_queries('[{"ID": "q", "expression": "SUM(METRICS())", "ReturnData": true}]', "cloudwatch")
    assert fields == {
        "MetricDataQueries.member.1.Id": "q",
        "MetricDataQueries.member.1.Expression": "SUM(METRICS())",
        "MetricDataQueries.member.1.ReturnData": "true",
    }


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("{not json", "not a JSON list"),
        ('{"Id": "q"}', "non-empty JSON list"),
        ('[{"Id": "q", "Expresion": "x"}]', r"query\[0\].Expresion: not a MetricDataQuery field"),
    ],
)
def test_cloudwatch_bad_queries_name_the_problem(query: str, problem: str) -> None:
    with pytest.raises(ProviderConfigError, match=problem):
        flatten_queries(query, "cloudwatch")


async def test_cloudwatch_needs_a_region(session: aiohttp.ClientSession) -> None:
    spec = MetricTemplateProvider(type="cloudwatch")
    creds = {"aws_access_key_id": "a", "aws_secret_access_key": "b"}
    with pytest.raises(ProviderConfigError, match=r"spec\.provider\.region is required"):
        await run_query("[]", spec, creds, session=session, timeout=1)


async def test_cloudwatch_never_signs_with_the_environment_for_a_tenant_address(
    backend: FakeBackend, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    spec = MetricTemplateProvider(type="cloudwatch", address=backend.url, region="us-west-2")
    with pytest.raises(ProviderConfigError, match="secretRef is required"):
        await run_query('[{"Id": "q", "Expression": "1"}]', spec, {}, session=session, timeout=5)
    with ambient_credentials(True), pytest.raises(ProviderConfigError, match=r"amazonaws\.com"):
        await run_query('[{"Id": "q", "Expression": "1"}]', spec, {}, session=session, timeout=5)
    assert backend.requests == []


def test_cloudwatch_uses_the_environment_towards_aws_with_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with ambient_credentials(True):
        aws = credentials_from({}, "cloudwatch", "https://monitoring.us-west-2.amazonaws.com")
    assert aws.access_key_id == "AKIAENV"


@pytest.mark.parametrize(
    ("address", "stream"),
    [
        ("https://api.us1.signalfx.com", "https://stream.us1.signalfx.com"),
        ("wss://stream.eu0.signalfx.com/", "https://stream.eu0.signalfx.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_splunk_talks_to_the_stream_host(address: str, stream: str) -> None:
    assert stream_address(address) == stream


async def test_google_tokens_are_cached_between_queries(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    forget_tokens()
    STACKDRIVER.success(backend)
    spec = STACKDRIVER.provider(backend.url)
    creds = STACKDRIVER.credentials(backend.url)
    for _ in range(3):
        await run_query(STACKDRIVER.query, spec, creds, session=session, timeout=5)
    assert [r.path for r in backend.requests].count("/token") == 1


async def test_google_int64_values_and_several_series(backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    forget_tokens()
    answer: dict[str, object] = {"timeSeriesData": [{"pointData": [{"values": [{"int64Value": "17"}]}]}]}

    async def handler(req: Recorded) -> web.StreamResponse:
        if req.path == "/token":
            return web.json_response({"access_token": "t", "expires_in": 3600})
        return web.json_response(answer)

    backend.respond(handler)
    spec = STACKDRIVER.provider(backend.url)
    creds = STACKDRIVER.credentials(backend.url)
    assert await run_query("q", spec, creds, session=session, timeout=5) == 17
    answer["timeSeriesData"] = answer["timeSeriesData"] * 2  # type: ignore[operator]
    with pytest.raises(MultipleSeries):
        await run_query("q", spec, creds, session=session, timeout=5)


async def test_google_key_without_private_key_is_a_config_error(session: aiohttp.ClientSession) -> None:
    spec = MetricTemplateProvider(type="stackdriver", address="http://127.0.0.1:9")
    creds = {"project": "p", "serviceAccountKey": json.dumps({"client_email": "a@b"})}
    with pytest.raises(ProviderConfigError, match="serviceAccountKey has no private_key"):
        await run_query("q", spec, creds, session=session, timeout=5)


def test_influx_several_records_are_refused() -> None:
    body = b",result,table,_value\r\n,,0,1.5\r\n,,1,2.5\r\n"
    with pytest.raises(MultipleSeries, match="2 records"):
        parse_annotated_csv(body)


def test_influx_in_band_errors_are_reported() -> None:
    body = b"#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,bucket not found,\r\n"
    with pytest.raises(Exception, match="query error: bucket not found"):
        parse_annotated_csv(body)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("keptn", "not supported by flaggerpy"), ("wavefront", "is unknown .one of: cloudwatch, datadog")],
)
def test_the_factory_names_unsupported_and_unknown_types(kind: str, problem: str) -> None:
    with pytest.raises(ProviderConfigError, match=problem):
        get_query(kind)


def test_an_empty_type_means_prometheus_like_flagger() -> None:
    assert get_query("") is get_query("prometheus")


async def test_splunk_stops_reading_at_the_end_of_the_computation(
    backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    released = asyncio.Event()

    async def stream(req: Recorded) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req.raw)
        await resp.write(b'event: data\ndata: {"data": [{"tsId": "a", "value": 4}]}\n\n')
        await resp.write(b'event: control-message\ndata: {\ndata: "event": "END_OF_CHANNEL"\ndata: }\n\n')
        # The connection stays open after the end of the computation: waiting for EOF would hit the timeout.
        await released.wait()
        return resp

    backend.respond(stream)
    spec = MetricTemplateProvider(type="splunk", address=backend.url)
    try:
        value = await run_query("data('x').publish()", spec, {"sf_token_key": "t"}, session=session, timeout=5)
    finally:
        released.set()
    assert value == 4


async def test_google_without_a_key_never_sends_the_controller_token_to_a_tenant_address(
    backend: FakeBackend, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget_tokens()
    monkeypatch.setenv("GCE_METADATA_HOST", backend.url.removeprefix("http://"))
    spec = MetricTemplateProvider(type="stackdriver", address=backend.url)
    with pytest.raises(ProviderConfigError, match="serviceAccountKey"):
        await run_query("fetch x", spec, {}, session=session, timeout=5)
    with ambient_credentials(True), pytest.raises(ProviderConfigError, match=r"googleapis\.com"):
        await run_query("fetch x", spec, {}, session=session, timeout=5)
    assert backend.requests == []


async def test_google_ambient_credentials_come_from_the_metadata_server(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    forget_tokens()

    async def metadata(req: Recorded) -> web.StreamResponse:
        assert req.headers["Metadata-Flavor"] == "Google"
        if req.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            return web.json_response({"access_token": "node-token", "expires_in": 3600})
        return web.Response(text="node-project")

    backend.respond(metadata)
    monkeypatch.setenv("GCE_METADATA_HOST", backend.url.removeprefix("http://"))
    assert await metadata_token(name="stackdriver", time_limit=5) == "node-token"
    assert await metadata_project(name="stackdriver", time_limit=5) == "node-project"
