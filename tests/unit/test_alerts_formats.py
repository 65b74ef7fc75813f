"""Severity order, the provider table and Discord's Slack endpoint."""

from __future__ import annotations

import pytest

from flaggerpy.alerts import discord
from flaggerpy.alerts.factory import FORMATS, UnsupportedProvider, chat_format
from flaggerpy.alerts.message import Severity


@pytest.mark.parametrize(
    ("subscribed", "admitted"),
    [("info", {"info", "warn", "error"}), ("warn", {"warn", "error"}), ("error", {"error"})],
)
def test_severity_admits_itself_and_above(subscribed: str, admitted: set[str]) -> None:
    level = Severity.parse(subscribed)
    assert {str(s) for s in Severity if level.admits(s)} == admitted


def test_empty_severity_is_info_and_unknown_is_named() -> None:
    assert Severity.parse("") is Severity.INFO
    with pytest.raises(ValueError, match="severity: 'critical' is not one of info, warn, error"):
        Severity.parse("critical")


def test_every_flagger_provider_type_and_generic_is_supported() -> None:
    assert set(FORMATS) == {"slack", "msteams", "discord", "rocket", "gchat", "generic"}


def test_unsupported_type_names_the_field() -> None:
    with pytest.raises(UnsupportedProvider, match=r"spec\.type: 'pagerduty' is not supported"):
        chat_format("pagerduty")


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("https://discord.com/api/webhooks/1/tok", "https://discord.com/api/webhooks/1/tok/slack"),
        ("https://discord.com/api/webhooks/1/tok/", "https://discord.com/api/webhooks/1/tok/slack"),
        ("https://discord.com/api/webhooks/1/tok/slack", "https://discord.com/api/webhooks/1/tok/slack"),
        (
            "https://discord.com/api/webhooks/1/tok?thread_id=9",
            "https://discord.com/api/webhooks/1/tok/slack?thread_id=9",
        ),
    ],
)
def test_discord_slack_endpoint(address: str, endpoint: str) -> None:
    assert discord.endpoint(address) == endpoint
