"""KubeClient against a scripted server: error mapping, retries with Retry-After, paths, session closing."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from flaggerpy.kube.api import KubeClient, Resource, load_configuration
from flaggerpy.kube.errors import (
    AlreadyExists,
    ApiError,
    ConfigError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    NotLeading,
    Unavailable,
)
from flaggerpy.kube.resources import CONFIGMAPS, DEPLOYMENTS, LEASES, NAMESPACES, by_kind
from flaggerpy.kube.settings import ClientSettings
from tests.unit.test_kube_fakeserver import cm, fake_cluster, json_ok, listing, respond

FAST = ClientSettings(retry_attempts=4, backoff_initial=0.01, backoff_max=0.02, backoff_jitter=0.0)


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Gone", Gone),
        (422, "Invalid", Invalid),
        (403, "Forbidden", Forbidden),
        (400, "BadRequest", ApiError),
    ],
)
async def test_error_statuses_map_to_typed_exceptions(code: int, reason: str, expected: type[ApiError]) -> None:
    async with fake_cluster(FAST) as (script, kube):
        script.then(respond(code, reason, f'configmaps "x" {reason}'))
        with pytest.raises(expected) as info:
            await kube.get(CONFIGMAPS, "x", "ns")
        assert type(info.value) is expected
        assert info.value.status == code
        assert len(script.requests) == 1, "4xx answers are final, not retried"


async def test_invalid_names_the_fields() -> None:
    async with fake_cluster(FAST) as (script, kube):
        causes = [
            {"reason": "FieldValueInvalid", "message": "must be >= 0", "field": "spec.rules[0].backendRefs[0].weight"}
        ]
        script.then(respond(422, "Invalid", 'HTTPRoute "r" is invalid', causes=causes))
        with pytest.raises(Invalid) as info:
            await kube.create(CONFIGMAPS, cm("x", 0))
        assert info.value.fields == ["spec.rules[0].backendRefs[0].weight"]
        assert "spec.rules[0].backendRefs[0].weight: must be >= 0" in str(info.value)


async def test_5xx_and_429_are_retried_honouring_retry_after() -> None:
    async with fake_cluster(FAST) as (script, kube):
        script.then(
            respond(503, "ServiceUnavailable", "busy"),
            respond(429, "TooManyRequests", "slow down", headers={"Retry-After": "0.3"}),
            json_ok(cm("x", 5)),
        )
        seen: list[tuple[str, str, int]] = []
        kube.add_observer(lambda verb, res, code, secs: seen.append((verb, res, code)))
        start = time.monotonic()
        obj = await kube.get(CONFIGMAPS, "x", "ns")
        assert time.monotonic() - start >= 0.3, "Retry-After must be waited for"
        assert obj["metadata"]["resourceVersion"] == "5"
        assert seen == [("get", "configmaps", 503), ("get", "configmaps", 429), ("get", "configmaps", 200)]


async def test_retries_give_up_with_the_last_error() -> None:
    async with fake_cluster(FAST) as (script, kube):
        script.then(*[respond(500, "InternalError", "boom")] * 4)
        with pytest.raises(ApiError) as info:
            await kube.get(CONFIGMAPS, "x", "ns")
        assert info.value.status == 500
        assert len(script.requests) == 4


async def test_unreachable_server_raises_unavailable() -> None:
    from kubernetes_asyncio.client import ApiClient, Configuration

    kube = KubeClient(api_client=ApiClient(Configuration(host="http://127.0.0.1:9")), settings=FAST)
    async with kube:
        with pytest.raises(Unavailable) as info:
            await kube.get(CONFIGMAPS, "x", "ns")
        assert info.value.status == 0


async def test_session_is_closed_after_the_context_exits() -> None:
    async with fake_cluster(FAST) as (_, kube):
        assert not kube.closed
    assert kube.closed


async def test_paths_verbs_and_list_fills_kind() -> None:
    async with fake_cluster(FAST) as (script, kube):
        script.then(
            listing(42, {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"}}),
            json_ok({}),
            json_ok({}),
            json_ok({}),
            json_ok({}),
        )
        items, rv = await kube.resource(CONFIGMAPS).list("ns", label_selector="app=x")
        assert rv == "42"
        assert items[0]["kind"] == "ConfigMap" and items[0]["apiVersion"] == "v1"
        await kube.patch(
            DEPLOYMENTS, "web", "prod", [{"op": "replace", "path": "/spec/replicas", "value": 0}], patch_type="json"
        )
        await kube.patch_status(DEPLOYMENTS, "web", "prod", {"status": {}})
        await kube.delete(NAMESPACES, "prod")
        await kube.get(Resource("flagger.app", "v1beta1", "canaries", "Canary"), "a b", "ns")
        paths = [(m, p) for m, p, _ in script.requests]
        assert paths == [
            ("GET", "/api/v1/namespaces/ns/configmaps"),
            ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web"),
            ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/status"),
            ("DELETE", "/api/v1/namespaces/prod"),
            ("GET", "/apis/flagger.app/v1beta1/namespaces/ns/canaries/a b"),
        ]
        assert script.requests[0][2]["labelSelector"] == "app=x"


async def test_bad_arguments_name_the_problem() -> None:
    async with fake_cluster(FAST) as (_, kube):
        with pytest.raises(ValueError, match="namespace is required"):
            await kube.get(CONFIGMAPS, "x")
        with pytest.raises(ValueError, match=r"metadata\.name"):
            await kube.replace(CONFIGMAPS, {"metadata": {"namespace": "ns"}})
        with pytest.raises(ValueError, match="patch_type"):
            await kube.patch(CONFIGMAPS, "x", "ns", {}, patch_type="yaml")  # type: ignore[arg-type]


def test_by_kind_finds_well_known_handles() -> None:
    assert by_kind("apps/v1", "Deployment") is DEPLOYMENTS
    assert by_kind("v1", "Nope") is None


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    from email.utils import format_datetime

    from flaggerpy.kube.api import _retry_after_seconds

    assert _retry_after_seconds("2") == 2.0
    assert _retry_after_seconds(None) is None
    assert _retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after_seconds(later) or 0) <= 30


async def test_missing_kubeconfig_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="does not exist"):
        await load_configuration(str(missing))


async def test_kubeconfig_context_selects_the_server(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "one", "cluster": {"server": "http://127.0.0.1:1111"}},
            {"name": "two", "cluster": {"server": "http://127.0.0.1:2222"}},
        ],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "one", "user": "u"}},
            {"name": "two", "context": {"cluster": "two", "user": "u"}},
        ],
        "current-context": "one",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    assert (await load_configuration(str(path))).host == "http://127.0.0.1:1111"
    assert (await load_configuration(str(path), context="two")).host == "http://127.0.0.1:2222"
    with pytest.raises(ConfigError):
        await load_configuration(str(path), context="three")


async def test_bearer_token_is_sent() -> None:
    async with fake_cluster(FAST) as (script, kube):
        kube.api_client.configuration.api_key = {"BearerToken": "Bearer abc"}
        seen: list[str] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            seen.append(request.headers.get("Authorization", ""))
            return web.json_response(cm("x", 1))

        script.then(handler)
        await kube.get(CONFIGMAPS, "x", "ns")
        assert seen == ["Bearer abc"]


async def test_a_closed_write_fence_stops_writes_before_they_are_sent_and_lets_reads_through() -> None:
    async with fake_cluster() as (script, kube):
        script.then(json_ok(cm("a", 1)), json_ok(cm("a", 2)))
        leading = [True]
        kube.set_write_fence(lambda resource: resource == "leases.coordination.k8s.io" or leading[0])
        await kube.patch(CONFIGMAPS, "a", "ns", {"data": {"k": "v"}})
        leading[0] = False
        with pytest.raises(NotLeading):
            await kube.patch(CONFIGMAPS, "a", "ns", {"data": {"k": "w"}})
        assert (await kube.get(CONFIGMAPS, "a", "ns"))["metadata"]["resourceVersion"] == "2"
        assert [method for method, _, _ in script.requests] == ["PATCH", "GET"], "the refused write never left"


async def test_the_rate_limit_queues_requests_but_never_the_lease() -> None:
    """With the bucket spent, a canary write waits for a token while a Lease renewal goes out at once: leader
    election must not miss its renew deadline behind a backlog (client-go gives it a client of its own)."""
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "flaggerpy", "namespace": "ns", "resourceVersion": "1"}}
    async with fake_cluster(ClientSettings(qps=0.01, burst=1)) as (script, kube):
        script.then(json_ok(cm("a", 1)), json_ok(lease), json_ok(cm("a", 2)))
        await kube.get(CONFIGMAPS, "a", "ns")  # takes the only token
        queued = asyncio.create_task(kube.get(CONFIGMAPS, "a", "ns"))
        await asyncio.sleep(0.05)
        assert not queued.done(), "the next request waits for a token (100 s at 0.01 qps)"
        await asyncio.wait_for(kube.replace(LEASES, lease), 5)
        queued.cancel()
        assert [method for method, _, _ in script.requests] == ["GET", "PUT"]
