"""Alerts reach each chat service in the shape it renders, filtered by severity, through a local HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from flaggerpy.alerts.client import DeliverySettings
from flaggerpy.alerts.fields import canary_fields
from flaggerpy.alerts.notifier import AlertNotifier, DefaultAlerts, ResolveError
from flaggerpy.apis.flagger import AlertProvider, Canary
from tests.unit.httpfakes import PostRecorder, serving
from tests.unit.manifests import canary_object

FAST = DeliverySettings(attempt_seconds=2, retries=2, backoff_min=0.01, backoff_max=0.02)


class Chat(PostRecorder):
    """A local server standing in for every chat service: records bodies and headers per path."""

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, int] = {}

    @property
    def auth(self) -> dict[str, list[str]]:
        return self.header("Authorization")

    @property
    def hosts(self) -> dict[str, list[str]]:
        return self.header("Host")

    async def answer(self, request: web.Request, body: Any) -> web.StreamResponse:
        return web.Response(status=self.status.get(request.path, 200), text="refused")


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    async with serving(Chat()) as state:
        yield state


class Lookup:
    """An in-memory ObjectLookup for AlertProviders and Secrets."""

    def __init__(self) -> None:
        self.providers: dict[tuple[str, str], AlertProvider] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}

    def add(self, name: str, namespace: str = "test", **spec: Any) -> None:
        self.providers[(namespace, name)] = AlertProvider.from_dict(
            {
                "apiVersion": "flagger.app/v1beta1",
                "kind": "AlertProvider",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }
        )

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        return self.providers.get((namespace, name))

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))


def make_canary(alerts: list[dict[str, Any]], **analysis: Any) -> Canary:
    return Canary.from_dict(
        canary_object(
            {"interval": "1m", "threshold": 5, "alerts": alerts, **analysis}
            | ({} if "iterations" in analysis else {"maxWeight": 50, "stepWeight": 10})
        )
    )


def alert(name: str, provider: str, severity: str = "", namespace: str | None = None) -> dict[str, Any]:
    ref: dict[str, str] = {"name": provider}
    if namespace:
        ref["namespace"] = namespace
    entry: dict[str, Any] = {"name": name, "providerRef": ref}
    if severity:
        entry["severity"] = severity
    return entry


FIELDS = {"Target": "Deployment/podinfo.test", "Failed checks threshold": "5"}


async def send(lookup: Lookup, canary: Canary, message: str, severity: str, **kwargs: Any) -> None:
    async with AlertNotifier(lookup, settings=FAST, **kwargs) as notifier:
        await notifier.notify(canary, message, severity, dict(FIELDS))


async def test_slack_attachment(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("on-call", type="slack", address=chat.url("/slack"), channel="on-call-alerts", username="bot")
    await send(lookup, make_canary([alert("on-call", "on-call")]), "Canary analysis failed", "error")
    (body,) = chat.bodies["/slack"]
    assert body["channel"] == "on-call-alerts"
    assert body["username"] == "bot"
    (attachment,) = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["author_name"] == "podinfo.test"
    assert attachment["text"] == "Canary analysis failed"
    assert attachment["fields"] == [
        {"title": "Target", "value": "Deployment/podinfo.test", "short": False},
        {"title": "Failed checks threshold", "value": "5", "short": False},
    ]


async def test_slack_defaults_for_channel_and_username(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("s", type="slack", address=chat.url("/slack"))
    await send(lookup, make_canary([alert("s", "s")]), "New revision detected", "info")
    (body,) = chat.bodies["/slack"]
    assert (body["channel"], body["username"], body["attachments"][0]["color"]) == ("general", "flagger", "good")


async def test_msteams_adaptive_card(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("teams", type="msteams", address=chat.url("/teams"))
    await send(lookup, make_canary([alert("t", "teams")]), "Halt advancement", "warn")
    (body,) = chat.bodies["/teams"]
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    title, text, facts = card["body"]
    assert (title["text"], title["color"]) == ("podinfo.test", "Warning")
    assert text["text"] == "Halt advancement"
    assert facts["facts"][0] == {"title": "Target", "value": "Deployment/podinfo.test"}


async def test_discord_posts_slack_format_to_the_slack_endpoint(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("discord", type="discord", address=chat.url("/api/webhooks/123/abc"), channel="qa", username="u")
    await send(lookup, make_canary([alert("d", "discord")]), "Promotion completed", "info")
    (body,) = chat.bodies["/api/webhooks/123/abc/slack"]
    assert body["attachments"][0]["text"] == "Promotion completed"
    assert body["attachments"][0]["color"].startswith("#")


async def test_rocket_attachment_with_hex_colour(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("rocket", type="rocket", address=chat.url("/hooks/rocket"), channel="deploys")
    await send(lookup, make_canary([alert("r", "rocket")]), "Canary analysis failed", "error")
    (body,) = chat.bodies["/hooks/rocket"]
    assert body["channel"] == "deploys"
    assert body["attachments"][0]["color"] == "#FF0000"


async def test_gchat_card(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("gchat", type="gchat", address=chat.url("/v1/spaces/X/messages"))
    await send(lookup, make_canary([alert("g", "gchat")]), "weight <20> & rising", "info")
    (body,) = chat.bodies["/v1/spaces/X/messages"]
    (card,) = body["cardsV2"]
    assert card["card"]["header"]["title"] == "podinfo.test"
    message, facts = card["card"]["sections"]
    assert "weight &lt;20&gt; &amp; rising" in message["widgets"][0]["textParagraph"]["text"]
    assert facts["widgets"][0] == {"decoratedText": {"topLabel": "Target", "text": "Deployment/podinfo.test"}}


async def test_generic_json(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("hook", type="generic", address=chat.url("/alerts"))
    await send(lookup, make_canary([alert("h", "hook")]), "Rolling back", "error", cluster_name="prod-eu")
    (body,) = chat.bodies["/alerts"]
    assert body["name"] == "podinfo" and body["namespace"] == "test"
    assert body["severity"] == "error"
    assert body["message"] == "Rolling back"
    assert body["fields"] == {"Cluster": "prod-eu", **FIELDS}
    assert body["timestamp"].endswith("Z")


async def test_cluster_name_is_the_first_field(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("s", type="slack", address=chat.url("/slack"))
    await send(lookup, make_canary([alert("s", "s")]), "hi", "info", cluster_name="prod-eu")
    titles = [f["title"] for f in chat.bodies["/slack"][0]["attachments"][0]["fields"]]
    assert titles == ["Cluster", "Target", "Failed checks threshold"]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("info", {"/info"}), ("warn", {"/info", "/warn"}), ("error", {"/info", "/warn", "/error"})],
)
async def test_alerts_receive_their_severity_and_above(chat: Chat, severity: str, expected: set[str]) -> None:
    lookup = Lookup()
    for level in ("info", "warn", "error"):
        lookup.add(level, type="generic", address=chat.url(f"/{level}"))
    canary = make_canary([alert("i", "info", "info"), alert("w", "warn", "warn"), alert("e", "error", "error")])
    await send(lookup, canary, "message", severity)
    assert set(chat.bodies) == expected


async def test_alert_without_severity_gets_everything(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("all", type="generic", address=chat.url("/all"))
    await send(lookup, make_canary([alert("a", "all")]), "message", "info")
    assert len(chat.bodies["/all"]) == 1


async def test_provider_in_another_namespace(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("shared", namespace="flagger", type="generic", address=chat.url("/shared"))
    await send(lookup, make_canary([alert("s", "shared", namespace="flagger")]), "m", "info")
    assert len(chat.bodies["/shared"]) == 1


async def test_no_cross_namespace_refs_refuses_a_provider_in_another_namespace(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("shared", namespace="flagger", type="generic", address=chat.url("/shared"))
    canary = make_canary([alert("s", "shared", namespace="flagger")])
    async with AlertNotifier(lookup, settings=FAST, same_namespace_only=True) as notifier:
        with pytest.raises(ResolveError, match="-no-cross-namespace-refs"):
            await notifier.resolve(canary, canary.analysis.alerts[0])  # type: ignore[index]
        await notifier.notify(canary, "m", "info", {})
    assert "/shared" not in chat.bodies


async def test_secret_address_token_and_precedence(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("slack-bot", type="slack", address=chat.url("/ignored"), secretRef={"name": "slack-secret"})
    lookup.secrets[("test", "slack-secret")] = {"address": chat.url("/api/chat.postMessage"), "token": "xoxb-1"}
    await send(lookup, make_canary([alert("s", "slack-bot")]), "m", "info")
    assert "/ignored" not in chat.bodies
    assert chat.auth["/api/chat.postMessage"] == ["Bearer xoxb-1"]


async def test_webhook_without_token_sends_no_authorization(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("s", type="slack", address=chat.url("/slack"))
    await send(lookup, make_canary([alert("s", "s")]), "m", "info")
    assert chat.auth["/slack"] == [""]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "AlertProvider test/p: spec.secretRef: Secret test/missing not found"),
        ({"token": "t"}, "AlertProvider test/p: spec.secretRef: Secret test/missing has no 'address' key"),
    ],
)
async def test_secret_problems_name_the_object(secret: dict[str, str] | None, problem: str) -> None:
    lookup = Lookup()
    lookup.add("p", type="slack", secretRef={"name": "missing"})
    if secret is not None:
        lookup.secrets[("test", "missing")] = secret
    canary = make_canary([alert("a", "p")])
    async with AlertNotifier(lookup, settings=FAST) as notifier:
        with pytest.raises(ResolveError) as caught:
            await notifier.resolve(canary, canary.analysis.alerts[0])  # type: ignore[index]
        assert str(caught.value) == problem
        await notifier.notify(canary, "still no exception", "error", {})


async def test_missing_provider_is_logged_not_raised(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("ok", type="generic", address=chat.url("/ok"))
    await send(lookup, make_canary([alert("gone", "nope"), alert("ok", "ok")]), "m", "info")
    assert len(chat.bodies["/ok"]) == 1


async def test_refusals_are_retried_then_given_up_without_raising(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("down", type="generic", address=chat.url("/down"))
    lookup.add("bad", type="generic", address=chat.url("/bad"))
    chat.status.update({"/down": 503, "/bad": 400})
    await send(lookup, make_canary([alert("d", "down"), alert("b", "bad")]), "m", "error")
    assert len(chat.bodies["/down"]) == 3
    assert len(chat.bodies["/bad"]) == 1


async def test_unreachable_service_does_not_raise() -> None:
    lookup = Lookup()
    lookup.add("gone", type="slack", address="http://127.0.0.1:9/hook")
    await send(lookup, make_canary([alert("g", "gone")]), "m", "error")


async def test_proxy_carries_the_message(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("via-proxy", type="generic", address="http://chat.example.invalid/hook", proxy=chat.url("/"))
    await send(lookup, make_canary([alert("p", "via-proxy")]), "through the proxy", "info")
    (body,) = chat.bodies["/hook"]
    assert body["message"] == "through the proxy"
    assert chat.hosts["/hook"] == ["chat.example.invalid"]


async def test_default_destination_only_without_canary_alerts(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("own", type="generic", address=chat.url("/own"))
    defaults = DefaultAlerts(slack_url=chat.url("/default"), slack_channel="deploys")
    await send(lookup, make_canary([]), "New revision detected", "info", defaults=defaults)
    await send(lookup, make_canary([alert("o", "own")]), "New revision detected", "info", defaults=defaults)
    (body,) = chat.bodies["/default"]
    assert body["channel"] == "deploys" and body["username"] == "flagger"
    assert len(chat.bodies["/own"]) == 1


async def test_default_msteams_wins_over_slack(chat: Chat) -> None:
    defaults = DefaultAlerts(slack_url=chat.url("/slack"), msteams_url=chat.url("/teams"))
    await send(Lookup(), make_canary([]), "m", "info", defaults=defaults)
    assert set(chat.bodies) == {"/teams"}


async def test_no_destination_is_a_no_op(chat: Chat) -> None:
    await send(Lookup(), make_canary([]), "m", "error")
    assert chat.bodies == {}


async def test_unknown_severity_is_sent_as_info(chat: Chat) -> None:
    lookup = Lookup()
    lookup.add("s", type="slack", address=chat.url("/slack"))
    await send(lookup, make_canary([alert("s", "s")]), "m", "critical")
    assert chat.bodies["/slack"][0]["attachments"][0]["color"] == "good"


def test_canary_fields_like_flagger() -> None:
    assert canary_fields(make_canary([])) == {
        "Target": "Deployment/podinfo.test",
        "Failed checks threshold": "5",
        "Progress deadline": "600s",
        "Traffic routing": "Weight step: 10 max: 50",
    }
    blue_green = make_canary([], iterations=10)
    assert canary_fields(blue_green)["Traffic routing"] == "Blue/Green"


@pytest.mark.parametrize(
    ("spec", "secret", "problem"),
    [
        ({"address": "hooks.slack.com/services/x"}, None, "spec.address: must be an http:// or https:// URL"),
        ({"secretRef": {"name": "s"}}, {"address": "ftp://x/y"}, "secretRef address: must be an http://"),
        ({"address": "https://hooks.slack.com/x", "proxy": "http://"}, None, "spec.proxy: must be an http://"),
    ],
)
async def test_bad_addresses_name_the_field(spec: dict[str, Any], secret: dict[str, str] | None, problem: str) -> None:
    lookup = Lookup()
    lookup.providers[("test", "p")] = AlertProvider.model_validate(
        {"metadata": {"name": "p", "namespace": "test"}, "spec": {"type": "slack", **spec}}
    )
    if secret is not None:
        lookup.secrets[("test", "s")] = secret
    canary = make_canary([alert("a", "p")])
    async with AlertNotifier(lookup, settings=FAST) as notifier:
        with pytest.raises(ResolveError, match="AlertProvider test/p: ") as caught:
            await notifier.resolve(canary, canary.analysis.alerts[0])  # type: ignore[index]
    assert problem in str(caught.value)


async def test_proxy_without_scheme_means_http(chat: Chat) -> None:
    lookup = Lookup()
    proxy = f"127.0.0.1:{chat.server.port}"
    lookup.add("p", type="generic", address="http://chat.example.invalid/hook", proxy=proxy)
    await send(lookup, make_canary([alert("p", "p")]), "m", "info")
    assert len(chat.bodies["/hook"]) == 1


def test_bad_default_flag_is_named() -> None:
    with pytest.raises(ValueError, match="--slack-url: must be an http:// or https:// URL"):
        AlertNotifier(Lookup(), defaults=DefaultAlerts(slack_url="hooks.slack.com/services/x"))


def test_environment_wins_over_flags_like_flagger() -> None:
    flags = DefaultAlerts(slack_url="https://hooks.slack.com/services/flag", slack_channel="deploys")
    merged = flags.with_environment({"SLACK_URL": "https://hooks.slack.com/services/env", "SLACK_TOKEN": ""})
    target = merged.target()
    assert target is not None
    assert (target.type, target.url, target.channel, target.token) == (
        "slack",
        "https://hooks.slack.com/services/env",
        "deploys",
        "",
    )
    teams = flags.with_environment({"MSTEAMS_URL": "https://example.webhook.office.com/x"}).target()
    assert teams is not None and teams.type == "msteams"
