"""Flagger's other strategies through the real Traefik, as a client sees them: who answers which request.

Each canary is held in WaitingPromotion (a ``confirm-promotion`` gate) with its analysis route in place while the
test sends requests through Traefik's entry point and reads the ``X-Pod`` header of the pod that answered:

- A/B by header (``x-canary: insider``) and by cookie (``canary=always``): matched requests reach canary pods,
  the others primary pods;
- blue/green: every answer comes from the primary while the canary is analysed; with mirroring, Traefik 3.7
  refuses the rule (it does not implement ``RequestMirror``) and answers 500;
- session affinity: at 50% the canary's answers set the affinity cookie (a ``ResponseHeaderModifier`` on the
  canary backend), and requests carrying it always reach the canary.

Then the gates open and every release is promoted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.e2e.release_harness import LocalWebhook, Release, RouteObserver, real_parts, requires_tools
from tests.e2e.traefik_parts import TraefikGateway, require_traefik
from tests.manifests import NAMESPACE, canary, deployment, host_of

pytestmark = [pytest.mark.e2e, requires_tools, pytest.mark.asyncio(loop_scope="module")]

OLD_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.0"
NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
COOKIE = "flagger-cookie"
ANALYSES: dict[str, dict[str, Any]] = {
    "abheader": {"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]},
    "abcookie": {"iterations": 2, "match": [{"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}]},
    "bluegreen": {"iterations": 2, "mirror": True},
    "bluegreen-plain": {"iterations": 2},
    "sticky": {"maxWeight": 50, "stepWeight": 50, "sessionAffinity": {"cookieName": COOKIE}},
}
TIMEOUT = 90.0


class PromotionGate(LocalWebhook):
    """A ``confirm-promotion`` webhook that says no until a canary's name is in ``opened``."""

    def __init__(self) -> None:
        self.opened: set[str] = set()

    async def _confirm(self, request: web.Request) -> web.Response:
        name = str((await request.json()).get("name"))
        return web.Response(text="go\n") if name in self.opened else web.Response(status=403, text="held\n")


Held = tuple[Release, RouteObserver, PromotionGate]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def held(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Held]:
    """Every strategy's release under way and held before promotion."""
    require_traefik()
    workdir: Path = tmp_path_factory.mktemp("traefik-strategies")
    gate = PromotionGate()
    await gate.start()
    try:
        async with real_parts(workdir, "6s", TraefikGateway()) as release:
            for name, analysis in ANALYSES.items():
                await release.create("apps", "deployments", deployment(name, OLD_IMAGE))
                await release.create("flagger.app", "canaries", canary(name, {
                    "interval": "1s", "threshold": 2, **analysis,
                    "webhooks": [{"name": "gate", "type": "confirm-promotion", "url": gate.url, "timeout": "5s"}],
                }))
            observer = RouteObserver(release.sandbox, list(ANALYSES))
            observer.start()
            try:
                for name in ANALYSES:
                    await observer.wait_phase(name, {"Initialized"}, TIMEOUT)
                for name in ANALYSES:
                    await release.release(name, NEW_IMAGE)
                for name in ANALYSES:
                    await observer.wait_phase(name, {"WaitingPromotion"}, TIMEOUT)
                yield release, observer, gate
            finally:
                await observer.stop()
    finally:
        await gate.stop()


async def answers(release: Release, name: str, count: int, headers: dict[str, str] | None = None,
                  session: aiohttp.ClientSession | None = None) -> list[tuple[str, dict[str, str]]]:
    """(pod that answered, response headers) of ``count`` GETs to canary ``name``'s host through Traefik."""
    url = f"http://127.0.0.1:{release.gateway_port}/"
    out = []
    own = session is None
    client = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    try:
        for _ in range(count):
            async with client.get(url, headers={"Host": host_of(name), **(headers or {})}) as resp:
                await resp.read()
                assert resp.status == 200, (name, resp.status)
                out.append((resp.headers.get("X-Pod", ""), dict(resp.headers)))
    finally:
        if own:
            await client.close()
    return out


def is_canary(name: str, pod: str) -> bool:
    return pod.startswith(f"{name}-") and not pod.startswith(f"{name}-primary-")


@pytest.mark.parametrize(("name", "matched"), [("abheader", {"x-canary": "insider"}),
                                                # Flagger's cookie regex: "canary=always" first or after a ";"
                                                ("abcookie", {"Cookie": "canary=always; session=1"})])
async def test_ab_testing_sends_matched_requests_to_the_canary(held: Held, name: str,
                                                               matched: dict[str, str]) -> None:
    release, _, _ = held
    assert all(is_canary(name, pod) for pod, _ in await answers(release, name, 20, matched))
    assert not any(is_canary(name, pod) for pod, _ in await answers(release, name, 20))


async def test_blue_green_with_mirroring_is_refused_by_traefik(held: Held) -> None:
    """Traefik 3.7's Gateway provider does not implement RequestMirror: it refuses the mirrored rule and answers
    500 to every request it matches, until the mirroring ends (documented in the README)."""
    release, _, _ = held
    url = f"http://127.0.0.1:{release.gateway_port}/"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for _ in range(5):
            async with session.get(url, headers={"Host": host_of("bluegreen")}) as resp:
                assert resp.status == 500 and "X-Pod" not in resp.headers
    route = release.sandbox.cluster.get("gateway.networking.k8s.io", "httproutes", NAMESPACE, "bluegreen") or {}
    mirrored = [f for rule in route["spec"]["rules"] for f in rule.get("filters") or []]
    assert any(f["type"] == "RequestMirror" for f in mirrored), route["spec"]


async def test_blue_green_keeps_every_answer_on_the_primary_while_the_canary_is_analysed(held: Held) -> None:
    release, _, _ = held
    assert not any(is_canary("bluegreen-plain", pod) for pod, _ in await answers(release, "bluegreen-plain", 30))


async def test_session_affinity_cookie_round_trip(held: Held) -> None:
    release, _, _ = held
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5),
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        first = await answers(release, "sticky", 40, session=session)
        from_canary = [headers for pod, headers in first if is_canary("sticky", pod)]
        assert from_canary, "at 50% some answers came from the canary"
        cookies = [h.get("Set-Cookie", "") for h in from_canary]
        assert all(c.startswith(f"{COOKIE}=") for c in cookies), cookies
        assert not any(h.get("Set-Cookie", "").startswith(f"{COOKIE}=") for pod, h in first
                       if not is_canary("sticky", pod))
        value = re.split("[;]", cookies[0])[0]
        pinned = await answers(release, "sticky", 20, {"Cookie": value}, session=session)
        assert all(is_canary("sticky", pod) for pod, _ in pinned)


async def test_every_release_is_promoted_once_confirmed(held: Held) -> None:
    release, observer, gate = held
    gate.opened.update(ANALYSES)
    for name in ANALYSES:
        assert await observer.wait_phase(name, {"Succeeded", "Failed"}, TIMEOUT) == "Succeeded"
        primary = release.sandbox.cluster.get("apps", "deployments", NAMESPACE, f"{name}-primary")
        assert primary is not None and primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
