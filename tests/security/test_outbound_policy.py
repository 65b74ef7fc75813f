"""The outbound policy at the socket: which addresses a tenant's URL may reach, checked on the names as resolved.

These run the real sessions (resolver, connector) of :mod:`flaggerpy.outbound` in this process, because a test
cannot bind 169.254.169.254 or make the controller's pod: loopback stands in for "the controller's own pod".
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult

from flaggerpy import outbound
from flaggerpy.alerts.client import DeliveryError, DeliverySettings, post_json, url_problem
from flaggerpy.analysis.base import HookType, StepContext
from flaggerpy.analysis.webhooks import WebhookRunner
from flaggerpy.apis.flagger import Canary
from flaggerpy.outbound import OutboundPolicy, OutboundRefused, new_session
from tests.manifests import canary
from tests.security.conftest import FakeServer

IN_CLUSTER = OutboundPolicy(in_cluster=True, own_addresses=frozenset({"10.1.2.3"}))


async def ok(_: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    backend = await FakeServer(ok).start()
    yield backend
    await backend.stop()


async def status_of(policy: OutboundPolicy, url: str) -> int:
    async with new_session(policy) as session, session.get(url, allow_redirects=False) as resp:
        return resp.status


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0"])
async def test_in_cluster_loopback_is_the_controller_itself(server: FakeServer, host: str) -> None:
    # "localhost" is refused at resolution: the name is looked up, and what it resolves to is checked.
    with pytest.raises(OutboundRefused, match="controller's own pod"):
        await status_of(IN_CLUSTER, f"http://{host}:{server.port}/")
    assert server.seen == []


async def test_run_from_a_kubeconfig_loopback_is_the_users_machine(server: FakeServer) -> None:
    assert await status_of(OutboundPolicy(), f"http://localhost:{server.port}/") == 200


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.1.2.3:8080/metrics",
])
async def test_metadata_link_local_and_own_addresses_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        await status_of(IN_CLUSTER, url)
    if "10.1.2.3" not in url:
        with pytest.raises(OutboundRefused):
            await status_of(OutboundPolicy(), url)


async def test_an_operator_allow_list_widens_the_policy(server: FakeServer) -> None:
    allowed = OutboundPolicy(in_cluster=True, allow=("127.0.0.0/8",))
    assert await status_of(allowed, f"http://127.0.0.1:{server.port}/") == 200
    assert await status_of(allowed, f"http://localhost:{server.port}/") == 200


class _FakeDns:
    """Resolves every name to one address (what a tenant's DNS record might say)."""

    answer = "127.0.0.1"

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=self.answer, port=port, family=socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


async def test_a_name_resolving_to_the_metadata_service_is_refused(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound, "DefaultResolver", _FakeDns)
    monkeypatch.setattr(_FakeDns, "answer", "169.254.169.254")
    with pytest.raises(OutboundRefused, match=r"tenant\.example resolves to 169\.254\.169\.254"):
        await status_of(OutboundPolicy(), f"http://tenant.example:{server.port}/")
    # The address that was checked is the one connected to.
    monkeypatch.setattr(_FakeDns, "answer", "127.0.0.1")
    assert await status_of(OutboundPolicy(), f"http://tenant.example:{server.port}/") == 200
    assert server.seen[-1].headers["Host"] == f"tenant.example:{server.port}"


def hook_canary(url: str) -> Canary:
    return Canary.from_dict(canary(analysis={"interval": "1s", "threshold": 1, "stepWeight": 10, "webhooks": [
        {"name": "hook", "type": "rollout", "url": url}]}))


STEP = StepContext(phase="Progressing", checksum="")


@pytest.mark.parametrize(("url", "problem"), [
    ("http://user:pw@127.0.0.1:1/hook", "url: must not contain user info"),
    ("http://127.0.0.1:1/hook#frag", "url: must not contain a fragment"),
])
async def test_webhook_addresses_with_user_info_or_fragments_are_refused(url: str, problem: str) -> None:
    async with WebhookRunner() as runner:
        (result,) = await runner.run(hook_canary(url), HookType.ROLLOUT, STEP)
    assert not result.passed and result.error is not None and result.error.startswith(problem)
    assert "pw" not in result.error


async def test_in_cluster_a_webhook_to_the_pod_itself_fails_naming_the_field(server: FakeServer) -> None:
    async with WebhookRunner(policy=IN_CLUSTER) as runner:
        (result,) = await runner.run(hook_canary(f"{server.url}/hook?token=s3cr3t"), HookType.ROLLOUT, STEP)
    assert result.error is not None and result.error.startswith("url: address refused")
    assert "s3cr3t" not in result.error
    assert server.seen == []


async def test_alerts_do_not_follow_redirects(server: FakeServer) -> None:
    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    server.handler = redirect
    settings = DeliverySettings(retries=0)
    async with new_session() as session:
        with pytest.raises(DeliveryError, match="redirects are not followed"):
            await post_json(session, f"{server.url}/alert", {"text": "hi"}, settings=settings)
    assert len(server.seen) == 1


async def test_an_alert_proxy_at_the_metadata_address_is_refused() -> None:
    async with new_session() as session:
        with pytest.raises(DeliveryError, match="address refused"):
            await post_json(session, "https://hooks.slack.com/services/x", {"text": "hi"},
                            proxy="http://169.254.169.254:80", settings=DeliverySettings(retries=0))


def test_the_operator_allow_list_accepts_cidrs_and_names_only() -> None:
    assert outbound.parse_allow_entry("169.254.169.254/32") == "169.254.169.254/32"
    assert outbound.parse_allow_entry("metadata.google.internal") == "metadata.google.internal"
    with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
        outbound.parse_allow_entry("http://x/")


def test_urls_are_reported_without_query_or_user_info() -> None:
    assert outbound.redact_url("https://u:p@hooks.example.com:8443/a/b?token=s#f") == "https://hooks.example.com:8443/a/b"



def test_only_a_proxy_may_carry_user_info() -> None:
    assert url_problem("http://user:pw@proxy.internal:3128", proxy=True) is None
    assert url_problem("https://user:pw@hooks.slack.com/services/x") == (
        "must not contain user info (user:password@); use the Secret's credentials")
    assert url_problem("http://proxy.internal:3128#x", proxy=True) == "must not contain a fragment ('#')"
