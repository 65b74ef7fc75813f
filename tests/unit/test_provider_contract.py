"""Every metric provider against a local fake of its real API: the exact request, and each way it can fail."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flaggerpy.analysis.providers import (
    AuthError,
    HttpError,
    MalformedResponse,
    NoData,
    ProviderTimeout,
    run_query,
)
from flaggerpy.analysis.providers.gcp_auth import forget_tokens
from flaggerpy.analysis.providers.sigv4 import AwsCredentials, sign
from flaggerpy.apis.flagger import MetricTemplateProvider
from tests.unit.test_provider_fake_backend import FakeBackend, Recorded

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


@dataclass
class Case:
    """One provider: how to configure it, what its API answers, and what its request must look like."""

    type: str
    query: str
    credentials: Callable[[str], dict[str, str]]
    success: Callable[[FakeBackend], None]
    expected: float
    no_data: Callable[[FakeBackend], None]
    malformed: Callable[[FakeBackend], None]
    check: Callable[[list[Recorded], str], None]
    secrets: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)

    def provider(self, url: str) -> MetricTemplateProvider:
        return MetricTemplateProvider(type=self.type, address=url, **self.extra)


def _json(payload: object) -> Callable[[FakeBackend], None]:
    return lambda backend: backend.json(payload)


def _text(body: str, content_type: str = "text/plain") -> Callable[[FakeBackend], None]:
    return lambda backend: backend.text(body, content_type=content_type)


def _only(requests: list[Recorded]) -> Recorded:
    assert len(requests) == 1, [r.path for r in requests]
    return requests[0]


# --- prometheus -----------------------------------------------------------------------------------------------


def _check_prometheus(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("GET", "/api/v1/query")
    assert req.query["query"] == 'sum( rate(http_requests_total{app="podinfo"}[1m]) )'  # whitespace collapsed
    assert req.headers["Authorization"] == "Bearer s3cr3t-token"


PROMETHEUS = Case(
    type="prometheus",
    query='sum(\n  rate(http_requests_total{app="podinfo"}[1m])\n)',
    credentials=lambda _: {"token": "s3cr3t-token"},
    success=_json(
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.7e9, "99.5"]}]}}
    ),
    expected=99.5,
    no_data=_json({"status": "success", "data": {"resultType": "vector", "result": []}}),
    malformed=_text("<html>proxy error page</html>", "text/html"),
    check=_check_prometheus,
    secrets=("s3cr3t-token",),
)

# --- datadog ----------------------------------------------------------------------------------------------------


def _check_datadog(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("GET", "/api/v1/query")
    assert req.query["query"] == "avg:trace.http.request.errors{service:podinfo}.as_rate()"
    assert int(req.query["to"]) - int(req.query["from"]) == 600  # ten 1m intervals, as Flagger asks
    assert req.headers["DD-API-KEY"] == "dd-api-secret"
    assert req.headers["DD-APPLICATION-KEY"] == "dd-app-secret"


DATADOG = Case(
    type="datadog",
    query="avg:trace.http.request.errors{service:podinfo}.as_rate()",
    credentials=lambda _: {"datadog_api_key": "dd-api-secret", "datadog_application_key": "dd-app-secret"},
    success=_json({"status": "ok", "series": [{"pointlist": [[1.7e12, None], [1.7e12, 1.25], [1.7e12, 9.0]]}]}),
    expected=1.25,
    no_data=_json({"status": "ok", "series": []}),
    malformed=_text("not json"),
    check=_check_datadog,
    secrets=("dd-api-secret", "dd-app-secret"),
)

# --- newrelic ---------------------------------------------------------------------------------------------------


def _check_newrelic(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("GET", "/v1/accounts/1234567/query")
    assert req.query["nrql"] == "SELECT percentage(count(*), WHERE error IS true) FROM Transaction SINCE 60 seconds ago"
    assert req.headers["X-Query-Key"] == "nr-query-secret"


NEWRELIC = Case(
    type="newrelic",
    query="SELECT percentage(count(*), WHERE error IS true) FROM Transaction",
    credentials=lambda _: {"newrelic_account_id": "1234567", "newrelic_query_key": "nr-query-secret"},
    success=_json({"results": [{"result": 2.5}], "metadata": {}}),
    expected=2.5,
    no_data=_json({"results": [{"result": None}]}),
    malformed=_json({"unexpected": True}),
    check=_check_newrelic,
    secrets=("nr-query-secret",),
)

# --- graphite ---------------------------------------------------------------------------------------------------


def _check_graphite(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("GET", "/render")
    assert req.query.getall("target") == ["summarize(podinfo.errors, '1min', 'sum', false)"]
    assert req.query["from"] == "-5min"
    assert req.query["format"] == "json"
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"grafana:graphite-secret").decode()


GRAPHITE = Case(
    type="graphite",
    query="target=summarize(podinfo.errors, '1min', 'sum', false)&from=-5min",
    credentials=lambda _: {"username": "grafana", "password": "graphite-secret"},
    success=_json([{"target": "podinfo.errors", "datapoints": [[1.0, 1700000000], [4.0, 1700000060], [None, 1]]}]),
    expected=4.0,
    no_data=_json([]),
    malformed=_json({"datapoints": "nope"}),
    check=_check_graphite,
    secrets=("graphite-secret",),
)

# --- influxdb ---------------------------------------------------------------------------------------------------

_INFLUX_OK = (
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,true,true,false,true\r\n"
    "#default,_result,,,,,\r\n"
    ",result,table,_start,_stop,_value,_field\r\n"
    ",,0,2026-11-22T00:00:00Z,2026-11-22T00:01:00Z,0.75,errors\r\n"
    "\r\n"
)


def _check_influx(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("POST", "/api/v2/query")
    assert req.query["org"] == "flaggerpy"
    assert req.headers["Authorization"] == "Token influx-secret"
    assert req.headers["Content-Type"] == "application/json"
    body = json.loads(req.body)
    assert body["query"] == 'from(bucket: "app") |> range(start: -1m) |> mean()'
    assert body["type"] == "flux"
    assert body["dialect"]["annotations"] == ["datatype", "group", "default"]


INFLUXDB = Case(
    type="influxdb",
    query='from(bucket: "app") |> range(start: -1m) |> mean()',
    credentials=lambda _: {"token": "influx-secret", "org": "flaggerpy"},
    success=_text(_INFLUX_OK, "text/csv"),
    expected=0.75,
    no_data=_text("\r\n", "text/csv"),
    malformed=_text(",result,table,foo\r\n,,0,1\r\n", "text/csv"),
    check=_check_influx,
    secrets=("influx-secret",),
)

# --- dynatrace --------------------------------------------------------------------------------------------------


def _check_dynatrace(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("GET", "/api/v2/metrics/query")
    assert req.query["metricSelector"] == "builtin:service.response.time:avg"
    assert req.query["resolution"] == "Inf"
    assert int(req.query["to"]) - int(req.query["from"]) == 600_000
    assert req.headers["Authorization"] == "Api-Token dt-secret"


DYNATRACE = Case(
    type="dynatrace",
    query="builtin:service.response.time:avg",
    credentials=lambda _: {"dynatrace_token": "dt-secret"},
    success=_json(
        {
            "totalCount": 1,
            "resolution": "Inf",
            "result": [{"metricId": "m", "data": [{"dimensions": [], "timestamps": [1], "values": [123.4]}]}],
        }
    ),
    expected=123.4,
    no_data=_json({"totalCount": 0, "result": [{"metricId": "m", "data": []}]}),
    malformed=_json({"result": [{"metricId": "m", "data": [{"values": "x"}]}]}),
    check=_check_dynatrace,
    secrets=("dt-secret",),
)

# --- cloudwatch -------------------------------------------------------------------------------------------------

_CW_NS = "http://monitoring.amazonaws.com/doc/2010-08-01/"


def _cw_answer(values: list[float]) -> str:
    members = "".join(f"<member>{v}</member>" for v in values)
    return (
        f'<GetMetricDataResponse xmlns="{_CW_NS}"><GetMetricDataResult><MetricDataResults><member>'
        f"<Id>e1</Id><Label>errors</Label><Timestamps/><Values>{members}</Values><StatusCode>Complete</StatusCode>"
        "</member></MetricDataResults><Messages/></GetMetricDataResult>"
        "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetMetricDataResponse>"
    )


_CW_QUERY = json.dumps(
    [
        {
            "Id": "e1",
            "Expression": "m1 / m2",
            "Label": "ErrorRate",
        },
        {
            "id": "m1",
            "metricStat": {
                "metric": {
                    "namespace": "MyKubernetesApp",
                    "metricName": "ErrorCount",
                    "dimensions": [{"name": "AppName", "value": "podinfo"}],
                },
                "period": 60,
                "stat": "Sum",
            },
            "returnData": False,
        },
    ]
)
_AMZ_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=AKIAFLAGGERPY/(\d{8})/eu-west-1/monitoring/aws4_request, "
    r"SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$"
)


def _check_cloudwatch(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("POST", "/")
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    form = dict(parse_qsl(req.body.decode()))
    assert form["Action"] == "GetMetricData"
    assert form["Version"] == "2010-08-01"
    assert form["MaxDatapoints"] == "20"
    assert form["MetricDataQueries.member.1.Id"] == "e1"
    assert form["MetricDataQueries.member.1.Expression"] == "m1 / m2"
    assert form["MetricDataQueries.member.2.MetricStat.Metric.Namespace"] == "MyKubernetesApp"
    assert form["MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Name"] == "AppName"
    assert form["MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Value"] == "podinfo"
    assert form["MetricDataQueries.member.2.MetricStat.Period"] == "60"
    assert form["MetricDataQueries.member.2.ReturnData"] == "false"
    start = datetime.strptime(form["StartTime"], "%Y-%m-%dT%H:%M:%SZ")
    end = datetime.strptime(form["EndTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert (end - start).total_seconds() == pytest.approx(600, abs=1)
    auth = req.headers["Authorization"]
    assert _AMZ_AUTH.match(auth), auth
    # Re-sign what actually went over the wire: the signature covers the real Host, Content-Type and body.
    when = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = sign(
        "POST",
        req.headers["Host"],
        "/",
        {},
        {"Content-Type": req.headers["Content-Type"]},
        req.body,
        credentials=AwsCredentials("AKIAFLAGGERPY", "aws-secret-key"),
        region="eu-west-1",
        service="monitoring",
        now=when,
    )
    assert auth == expected["Authorization"]


CLOUDWATCH = Case(
    type="cloudwatch",
    query=_CW_QUERY,
    credentials=lambda _: {"aws_access_key_id": "AKIAFLAGGERPY", "aws_secret_access_key": "aws-secret-key"},
    success=_text(_cw_answer([0.5, 0.25]), "text/xml"),
    expected=0.5,
    no_data=_text(_cw_answer([]), "text/xml"),
    malformed=_text("{not xml}"),
    check=_check_cloudwatch,
    secrets=("aws-secret-key",),
    extra={"region": "eu-west-1"},
)

# --- stackdriver ------------------------------------------------------------------------------------------------


def _sa_key(url: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "flaggerpy-test",
            "private_key_id": "key-1",
            "private_key": _PEM,
            "client_email": "flagger@flaggerpy-test.iam.gserviceaccount.com",
            "token_uri": f"{url}/token",
        }
    )


def _google(answer: object) -> Callable[[FakeBackend], None]:
    def script(backend: FakeBackend) -> None:
        async def handler(req: Recorded) -> web.StreamResponse:
            if req.path == "/token":
                return web.json_response(
                    {"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}
                )
            if isinstance(answer, str):
                return web.Response(text=answer)
            return web.json_response(answer)

        backend.respond(handler)

    return script


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _check_stackdriver(requests: list[Recorded], url: str) -> None:
    assert [r.path for r in requests] == ["/token", "/v3/projects/my-project/timeSeries:query"]
    token_req, query_req = requests
    form = dict(parse_qsl(token_req.body.decode()))
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header, claims, signature = form["assertion"].split(".")
    assert json.loads(_b64decode(header)) == {"alg": "RS256", "typ": "JWT", "kid": "key-1"}
    body = json.loads(_b64decode(claims))
    assert body["iss"] == "flagger@flaggerpy-test.iam.gserviceaccount.com"
    assert body["aud"] == f"{url}/token"
    assert body["scope"] == "https://www.googleapis.com/auth/monitoring.read"
    assert body["exp"] - body["iat"] == 3600
    _RSA_KEY.public_key().verify(
        _b64decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert query_req.method == "POST"
    assert query_req.headers["Authorization"] == "Bearer ya29.test-token"
    assert json.loads(query_req.body) == {"query": "fetch k8s_container | metric 'x' | within 1m"}


STACKDRIVER = Case(
    type="stackdriver",
    query="fetch k8s_container | metric 'x' | within 1m",
    credentials=lambda url: {"project": "my-project", "serviceAccountKey": _sa_key(url)},
    success=_google(
        {
            "timeSeriesDescriptor": {"pointDescriptors": [{"key": "value.x", "valueType": "DOUBLE"}]},
            "timeSeriesData": [{"labelValues": [], "pointData": [{"values": [{"doubleValue": 0.25}]}]}],
        }
    ),
    expected=0.25,
    no_data=_google({}),
    malformed=_google("<html>oops</html>"),
    check=_check_stackdriver,
    secrets=("PRIVATE KEY",),
)

# --- splunk -----------------------------------------------------------------------------------------------------

_SSE_OK = """event: control-message
data: {"event": "STREAM_START", "timestampMs": 1}

event: metadata
data: {"tsId": "AAAAAKqRkO8", "properties": {"sf_metric": "errors"}}

event: data
data: {"data": [{"tsId": "AAAAAKqRkO8", "value": 5}], "logicalTimestampMs": 1}

event: data
data: {
data:   "data": [{"tsId": "AAAAAKqRkO8", "value": 7.5}],
data:   "logicalTimestampMs": 2
data: }

event: control-message
data: {"event": "END_OF_CHANNEL", "timestampMs": 3}

"""
_SSE_EMPTY = """event: control-message
data: {"event": "STREAM_START", "timestampMs": 1}

event: control-message
data: {"event": "END_OF_CHANNEL", "timestampMs": 3}

"""


def _check_splunk(requests: list[Recorded], url: str) -> None:
    req = _only(requests)
    assert (req.method, req.path) == ("POST", "/v2/signalflow/execute")
    assert req.headers["X-SF-Token"] == "sf-secret"
    assert req.headers["Content-Type"] == "text/plain"
    assert req.body.decode() == "data('errors').sum().publish()"
    assert int(req.query["stop"]) - int(req.query["start"]) == 600_000
    assert req.query["immediate"] == "true"


SPLUNK = Case(
    type="splunk",
    query="data('errors').sum().publish()",
    credentials=lambda _: {"sf_token_key": "sf-secret"},
    success=_text(_SSE_OK, "text/event-stream"),
    expected=7.5,
    no_data=_text(_SSE_EMPTY, "text/event-stream"),
    malformed=_text("event: data\ndata: {oops\n\n", "text/event-stream"),
    check=_check_splunk,
    secrets=("sf-secret",),
)

CASES = [PROMETHEUS, DATADOG, NEWRELIC, GRAPHITE, INFLUXDB, DYNATRACE, CLOUDWATCH, STACKDRIVER, SPLUNK]
ids = pytest.mark.parametrize("case", CASES, ids=[c.type for c in CASES])


@pytest.fixture(autouse=True)
def _fresh_tokens() -> None:
    forget_tokens()


async def _run(case: Case, backend: FakeBackend, session: aiohttp.ClientSession, budget: float = 5.0) -> float:
    return await run_query(
        case.query,
        case.provider(backend.url),
        case.credentials(backend.url),
        session=session,
        timeout=budget,
        interval=60.0,
    )


@ids
async def test_success_sends_the_request_the_real_api_expects(
    case: Case, backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    case.success(backend)
    assert await _run(case, backend, session) == pytest.approx(case.expected)
    case.check(backend.requests, backend.url)


@ids
async def test_no_data_is_reported_as_no_data(case: Case, backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    case.no_data(backend)
    with pytest.raises(NoData, match="no values found"):
        await _run(case, backend, session)


@ids
async def test_malformed_answer(case: Case, backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    case.malformed(backend)
    with pytest.raises(MalformedResponse) as info:
        await _run(case, backend, session)
    assert info.value.provider == case.type


@ids
async def test_http_500_is_an_http_error_with_the_backend_message(
    case: Case, backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    backend.json({"status": "error", "error": "query processing exploded"}, status=500)
    with pytest.raises(HttpError) as info:
        await _run(case, backend, session)
    assert info.value.status == 500
    assert "query processing exploded" in str(info.value)
    assert not isinstance(info.value, AuthError)


@ids
async def test_a_hanging_backend_times_out(case: Case, backend: FakeBackend, session: aiohttp.ClientSession) -> None:
    backend.hang()
    with pytest.raises(ProviderTimeout, match="no answer within"):
        await _run(case, backend, session, budget=0.3)


@ids
async def test_rejected_credentials_are_an_auth_error_that_leaks_no_secret(
    case: Case, backend: FakeBackend, session: aiohttp.ClientSession
) -> None:
    backend.json({"error": "invalid credentials"}, status=401)
    with pytest.raises(AuthError) as info:
        await _run(case, backend, session)
    assert info.value.status == 401
    for secret in case.secrets:
        assert secret not in str(info.value)
