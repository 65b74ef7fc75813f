"""Webhooks reach a real local HTTP server with Flagger's payload, and their answers are judged like Flagger's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from flaggerpy.analysis.base import HookType, StepContext
from flaggerpy.analysis.webhooks import WebhookRunner, WebhookSettings, canary_checksum
from flaggerpy.apis.flagger import Canary
from tests.unit.httpfakes import PostRecorder, serving
from tests.unit.manifests import canary_object

Reply = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class Hooks(PostRecorder):
    """A local server that records every payload per path and answers with a per-path handler."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, Reply] = {}

    @property
    def received(self) -> dict[str, list[Any]]:
        return self.bodies

    @property
    def headers(self) -> dict[str, list[str]]:
        return self.header("Content-Type")

    async def answer(self, request: web.Request, body: Any) -> web.StreamResponse:
        reply = self.replies.get(request.path)
        if reply is None:
            return await super().answer(request, body)
        return await reply(request, body)


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async with serving(Hooks()) as state:
        yield state


@pytest.fixture
async def runner() -> AsyncIterator[WebhookRunner]:
    async with WebhookRunner(settings=WebhookSettings(backoff_min=0.01, backoff_max=0.02)) as r:
        yield r


def make_canary(webhooks: list[dict[str, Any]], **status: Any) -> Canary:
    analysis = {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10, "webhooks": webhooks}
    return Canary.from_dict(canary_object(analysis, status))


STEP = StepContext(phase="Progressing", checksum="rev-42", canary_weight=10)


def status(code: int, text: str = "") -> Reply:
    async def reply(_: web.Request, __: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=code, text=text)

    return reply


async def test_payload_matches_flagger(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary(
        [
            {"name": "load-test", "type": "rollout", "url": hooks.url("/load"), "metadata": {"cmd": "hey -z 1m"}},
            {"name": "smoke", "type": "pre-rollout", "url": hooks.url("/smoke")},
        ]
    )
    results = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert [(r.name, r.type, r.passed, r.status_code) for r in results] == [("load-test", HookType.ROLLOUT, True, 200)]
    assert hooks.received == {
        "/load": [
            {
                "name": "podinfo",
                "namespace": "test",
                "phase": "Progressing",
                "checksum": "rev-42",
                "metadata": {"cmd": "hey -z 1m"},
            }
        ]
    }
    assert hooks.headers["/load"] == ["application/json"]


async def test_payload_without_metadata_omits_it_and_checksum_defaults(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary(
        [{"name": "smoke", "type": "pre-rollout", "url": hooks.url("/smoke")}],
        lastAppliedSpec="5d8f9c",
        trackedConfigs={"configmap/podinfo-config": "abc"},
    )
    await runner.run(canary, HookType.PRE_ROLLOUT, StepContext(phase="Progressing", checksum=""))
    (payload,) = hooks.received["/smoke"]
    assert "metadata" not in payload
    assert payload["checksum"] == canary_checksum(canary)


def test_checksum_follows_the_revision() -> None:
    first = make_canary([], lastAppliedSpec="aaa", trackedConfigs={"configmap/c": "1"})
    same = make_canary([], lastAppliedSpec="aaa", trackedConfigs={"configmap/c": "1"})
    new_spec = make_canary([], lastAppliedSpec="bbb", trackedConfigs={"configmap/c": "1"})
    new_config = make_canary([], lastAppliedSpec="aaa", trackedConfigs={"configmap/c": "2"})
    assert canary_checksum(first) == canary_checksum(same)
    assert len({canary_checksum(first), canary_checksum(new_spec), canary_checksum(new_config)}) == 3


async def test_type_defaults_to_rollout(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary([{"name": "untyped", "url": hooks.url("/untyped")}])
    results = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert [r.name for r in results] == ["untyped"]


async def test_no_hooks_of_the_type_is_an_empty_list(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary([{"name": "smoke", "type": "pre-rollout", "url": hooks.url("/smoke")}])
    assert await runner.run(canary, HookType.CONFIRM_PROMOTION, STEP) == []
    assert hooks.received == {}


@pytest.mark.parametrize(
    ("code", "passed"),
    [(200, True), (201, True), (202, True), (204, False), (403, False), (404, False)],
)
async def test_gate_answers(hooks: Hooks, runner: WebhookRunner, code: int, passed: bool) -> None:
    hooks.replies["/gate/check"] = status(code, "Forbidden" if code == 403 else "")
    canary = make_canary([{"name": "approval", "type": "confirm-promotion", "url": hooks.url("/gate/check")}])
    (result,) = await runner.run(canary, HookType.CONFIRM_PROMOTION, STEP)
    assert (result.passed, result.status_code) == (passed, code)
    if code == 403:
        assert result.error == "HTTP 403: Forbidden"


async def test_rollback_hook_answering_200_passes(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary([{"name": "manual rollback", "type": "rollback", "url": hooks.url("/rollback/check")}])
    (result,) = await runner.run(canary, HookType.ROLLBACK, STEP)
    assert result.passed and result.type == HookType.ROLLBACK


async def test_hooks_of_one_type_run_concurrently(hooks: Hooks, runner: WebhookRunner) -> None:
    both_arrived = asyncio.Event()

    async def wait_for_the_other(_: web.Request, __: dict[str, Any]) -> web.StreamResponse:
        if sum(len(v) for v in hooks.received.values()) == 2:
            both_arrived.set()
        # A sequential caller would never deliver the second request while the first one waits here.
        await asyncio.wait_for(both_arrived.wait(), 5)
        return web.Response(text="ok")

    hooks.replies["/a"] = hooks.replies["/b"] = wait_for_the_other
    canary = make_canary(
        [
            {"name": "a", "type": "pre-rollout", "url": hooks.url("/a"), "timeout": "10s"},
            {"name": "b", "type": "pre-rollout", "url": hooks.url("/b"), "timeout": "10s"},
        ]
    )
    results = await runner.run(canary, HookType.PRE_ROLLOUT, STEP)
    assert [r.passed for r in results] == [True, True]


async def test_timeout_fails_the_hook(hooks: Hooks, runner: WebhookRunner) -> None:
    async def slow(_: web.Request, __: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    hooks.replies["/slow"] = slow
    canary = make_canary([{"name": "slow", "type": "confirm-rollout", "url": hooks.url("/slow"), "timeout": "200ms"}])
    (result,) = await runner.run(canary, HookType.CONFIRM_ROLLOUT, STEP)
    assert not result.passed
    assert result.error == "no answer within 0.2s"


async def test_unset_timeout_uses_the_default(hooks: Hooks) -> None:
    async def slow(_: web.Request, __: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    hooks.replies["/slow"] = slow
    canary = make_canary([{"name": "slow", "type": "pre-rollout", "url": hooks.url("/slow")}])
    async with WebhookRunner(settings=WebhookSettings(default_timeout=0.2)) as runner:
        (result,) = await runner.run(canary, HookType.PRE_ROLLOUT, STEP)
    assert result.error == "no answer within 0.2s"


async def test_retries_until_the_hook_recovers(hooks: Hooks, runner: WebhookRunner) -> None:
    async def flaky(_: web.Request, __: dict[str, Any]) -> web.StreamResponse:
        if len(hooks.received["/flaky"]) < 3:
            return web.Response(status=503, text="warming up")
        return web.Response(text="ok")

    hooks.replies["/flaky"] = flaky
    canary = make_canary([{"name": "flaky", "type": "rollout", "url": hooks.url("/flaky"), "retries": 2}])
    (result,) = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert result.passed
    assert len(hooks.received["/flaky"]) == 3


async def test_without_retries_a_5xx_fails_once(hooks: Hooks, runner: WebhookRunner) -> None:
    hooks.replies["/down"] = status(503, "warming up")
    canary = make_canary([{"name": "down", "type": "rollout", "url": hooks.url("/down")}])
    (result,) = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert (result.passed, result.status_code, result.error) == (False, 503, "HTTP 503: warming up")
    assert len(hooks.received["/down"]) == 1


async def test_client_errors_are_not_retried(hooks: Hooks, runner: WebhookRunner) -> None:
    hooks.replies["/halt"] = status(403, "Forbidden")
    canary = make_canary([{"name": "halt", "type": "rollout", "url": hooks.url("/halt"), "retries": 3}])
    await runner.run(canary, HookType.ROLLOUT, STEP)
    assert len(hooks.received["/halt"]) == 1


async def test_unreachable_hook_fails_without_raising(runner: WebhookRunner) -> None:
    canary = make_canary([{"name": "gone", "type": "pre-rollout", "url": "http://127.0.0.1:9/", "retries": 1}])
    (result,) = await runner.run(canary, HookType.PRE_ROLLOUT, STEP)
    assert not result.passed
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("request failed")


@pytest.mark.parametrize(
    ("url", "problem"),
    [("not a url", "must be an http:// or https:// URL"), ("ftp://host/x", "must be an http:// or https:// URL")],
)
async def test_bad_url_names_the_field(runner: WebhookRunner, url: str, problem: str) -> None:
    canary = make_canary([{"name": "bad", "type": "rollout", "url": url}])
    (result,) = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert not result.passed
    assert result.error is not None and result.error.startswith("url: ") and problem in result.error


async def test_mute_alert_is_reported(hooks: Hooks, runner: WebhookRunner) -> None:
    hooks.replies["/quiet"] = status(500)
    canary = make_canary([{"name": "quiet", "type": "rollout", "url": hooks.url("/quiet"), "muteAlert": True}])
    (result,) = await runner.run(canary, HookType.ROLLOUT, STEP)
    assert not result.passed and result.mute_alert


async def test_event_hooks_receive_the_event(hooks: Hooks, runner: WebhookRunner) -> None:
    canary = make_canary(
        [
            {
                "name": "audit",
                "type": "event",
                "url": hooks.url("/events"),
                "metadata": {"team": "checkout", "eventType": "ignored"},
            },
            {"name": "load", "type": "rollout", "url": hooks.url("/load")},
        ],
        phase="Progressing",
        lastAppliedSpec="5d8f9c",
    )
    results = await runner.send_event(canary, "Normal", "Advance podinfo.test canary weight 20")
    assert [r.passed for r in results] == [True]
    (payload,) = hooks.received["/events"]
    assert payload["name"] == "podinfo" and payload["namespace"] == "test"
    assert payload["phase"] == "Progressing"
    assert payload["checksum"] == canary_checksum(canary)
    metadata = payload["metadata"]
    assert metadata["eventMessage"] == "Advance podinfo.test canary weight 20"
    assert metadata["eventType"] == "Normal"
    assert metadata["team"] == "checkout"
    assert metadata["timestamp"].isdigit() and len(metadata["timestamp"]) == 13
    assert "/load" not in hooks.received


async def test_controller_event_webhook_only_without_canary_event_hooks(hooks: Hooks) -> None:
    plain = make_canary([])
    with_own = make_canary([{"name": "audit", "type": "event", "url": hooks.url("/own")}])
    async with WebhookRunner(event_webhook=hooks.url("/global")) as runner:
        (result,) = await runner.send_event(plain, "Warning", "Halt advancement", phase="Progressing")
        await runner.send_event(with_own, "Normal", "New revision detected")
    assert result.name == "events" and result.passed
    assert [p["metadata"]["eventType"] for p in hooks.received["/global"]] == ["Warning"]
    assert [p["metadata"]["eventMessage"] for p in hooks.received["/own"]] == ["New revision detected"]


async def test_no_event_destination_sends_nothing(runner: WebhookRunner) -> None:
    assert not runner.sends_events(make_canary([]))
    assert await runner.send_event(make_canary([]), "Normal", "hello") == []


async def test_sends_events_names_every_destination(hooks: Hooks) -> None:
    own = make_canary([{"name": "audit", "type": "event", "url": hooks.url("/own")}])
    rollout_only = make_canary([{"name": "load", "type": "rollout", "url": hooks.url("/load")}])
    async with WebhookRunner() as runner:
        assert runner.sends_events(own) and not runner.sends_events(rollout_only)
    async with WebhookRunner(event_webhook=hooks.url("/global")) as runner:
        assert runner.sends_events(rollout_only)


async def test_shared_session_is_left_open(hooks: Hooks) -> None:
    async with aiohttp.ClientSession() as session:
        async with WebhookRunner(session=session) as runner:
            canary = make_canary([{"name": "a", "type": "rollout", "url": hooks.url("/a")}])
            await runner.run(canary, HookType.ROLLOUT, STEP)
        assert not session.closed
    assert len(hooks.received["/a"]) == 1


async def test_the_operator_cap_bounds_a_hooks_timeout_and_retries(hooks: Hooks) -> None:
    """A tenant's ``timeout: 1h`` with ``retries: 100`` on a hook that never answers holds the call for no longer
    than ``--webhook-max-duration``, and its retries are cut to what fits in it."""
    answered = asyncio.Event()

    async def hang(request: web.Request, body: Any) -> web.StreamResponse:
        await answered.wait()
        return web.Response()

    async def busy(request: web.Request, body: Any) -> web.StreamResponse:
        return web.Response(status=503)

    hooks.replies["/hang"] = hang
    hooks.replies["/busy"] = busy
    canary = make_canary([
        {"name": "hostile", "type": "rollout", "url": hooks.url("/hang"), "timeout": "1h", "retries": 100},
        {"name": "flaky", "type": "pre-rollout", "url": hooks.url("/busy"), "timeout": "0.1s", "retries": 100},
    ])
    settings = WebhookSettings(backoff_min=0.001, backoff_max=0.001, max_duration=0.3)
    async with WebhookRunner(settings=settings) as capped:
        [hostile] = await capped.run(canary, HookType.ROLLOUT, STEP)
        [flaky] = await capped.run(canary, HookType.PRE_ROLLOUT, STEP)
    answered.set()
    assert not hostile.passed
    assert hostile.error == "no answer within 0.3s", "the 1h timeout is cut to the cap"
    assert len(hooks.received["/hang"]) == 1, "a 1h timeout cut to the cap leaves no room for a retry"
    assert not flaky.passed and flaky.status_code == 503
    assert len(hooks.received["/busy"]) == 3, "0.3 s fits three 0.1 s attempts: two of the 100 retries"
