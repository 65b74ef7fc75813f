"""Flagger's test/gatewayapi/test-session-affinity.sh (and test/verify_session_affinity.go) through the sandbox's
real Gateway listener: a client given the canary cookie stays on the canary, one given the primary cookie on the
primary; the cookies are in the status as Flagger writes them; after promotion the old canary cookie is expired
with ``Max-Age=-1``. The sequence of Events is Flagger's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox
from tests.conformance.conftest import ControllerFactory, Hooks, initialized, sent
from tests.conformance.sequences import copying, hook, new_revision, progressive, promotion_tail, starting
from tests.integration.conftest import Cluster, wait_for
from tests.manifests import GATEWAY_NAME, GATEWAY_NAMESPACE, host_of

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.1.0"
CANARY_COOKIE, PRIMARY_COOKIE = "canary-flagger-cookie", "primary-flagger-cookie"

SEQUENCE = [
    *new_revision(),
    *starting(),
    *progressive([10, 20, 30, 40, 50], [hook("rollout")], []),
    hook("rollout"), copying(),
    *promotion_tail(),
]


@pytest.fixture
async def gateway_url(sandbox: Sandbox) -> AsyncIterator[str]:
    """The sandbox Gateway's real HTTP listener."""
    port = await sandbox.dataplane.listen(GATEWAY_NAMESPACE, GATEWAY_NAME)
    yield f"http://127.0.0.1:{port}/"


async def get(session: aiohttp.ClientSession, url: str, cookie: str | None = None) -> tuple[str, list[str]]:
    """(the Service that answered, the Set-Cookie headers) of one request to podinfo's host."""
    headers = {"Host": host_of("podinfo")}
    if cookie:
        headers["Cookie"] = cookie
    async with session.get(url, headers=headers) as answer:
        body = await answer.json()
        return body["service"], answer.headers.getall("Set-Cookie", [])


def cookie_of(set_cookies: list[str], name: str) -> str | None:
    """``name=value`` of the cookie ``name`` among Set-Cookie headers."""
    for header in set_cookies:
        pair = header.split(";")[0].strip()
        if pair.startswith(f"{name}="):
            return pair
    return None


async def test_session_affinity(cluster: Cluster, run_controller: ControllerFactory, hooks: Hooks,
                                gateway_url: str) -> None:
    # A longer interval than the other scenarios: the affinity is checked at weight 10, within one interval.
    analysis = {"interval": "1500ms", "threshold": 15, "maxWeight": 50, "stepWeight": 10,
                "sessionAffinity": {"cookieName": CANARY_COOKIE, "primaryCookieName": PRIMARY_COOKIE},
                "webhooks": [hooks.hook("rollout", "load-test"), hooks.hook("event")]}
    jar = aiohttp.DummyCookieJar()  # cookies are sent by hand, as the script's curl does
    async with run_controller(), aiohttp.ClientSession(cookie_jar=jar) as session:
        await initialized(cluster, hooks, analysis)
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("canaryWeight") == 10, 20)
        status = cluster.status()
        assert status["sessionAffinityCookie"].startswith(f"{CANARY_COOKIE}=")
        # verify_session_affinity.go: draw until each cookie is handed out, then replay it.
        canary_cookie = primary_cookie = None
        for _ in range(200):
            service, set_cookies = await get(session, gateway_url)
            canary_cookie = canary_cookie or cookie_of(set_cookies, CANARY_COOKIE)
            primary_cookie = primary_cookie or cookie_of(set_cookies, PRIMARY_COOKIE)
            if canary_cookie and primary_cookie:
                break
        assert canary_cookie == status["sessionAffinityCookie"]
        assert primary_cookie == status["primarySessionAffinityCookie"]
        for _ in range(10):
            assert (await get(session, gateway_url, canary_cookie))[0] == "test/podinfo-canary"
            assert (await get(session, gateway_url, primary_cookie))[0] == "test/podinfo-primary"
        status = await cluster.wait_phase("Succeeded", within=30)
        await wait_for(lambda: sent(hooks, "Promotion completed!"), 10)
        # "Verifying cookie cleanup": the old canary cookie comes back expired.
        assert status["previousSessionAffinityCookie"] == canary_cookie
        assert "sessionAffinityCookie" not in status
        service, set_cookies = await get(session, gateway_url, canary_cookie)
    assert service == "test/podinfo-primary"
    assert any(h.startswith(f"{canary_cookie};") and "Max-Age=-1" in h for h in set_cookies), set_cookies
    assert hooks.timeline() == SEQUENCE
