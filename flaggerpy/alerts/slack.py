"""Slack incoming webhooks (or ``chat.postMessage`` with a bot token): a coloured attachment with a field table."""

from __future__ import annotations

from typing import Any

from flaggerpy.alerts.message import Alert, Severity, Target

# Slack's named attachment colours render green, yellow and red in every client theme.
COLORS: dict[Severity, str] = {Severity.INFO: "good", Severity.WARN: "warning", Severity.ERROR: "danger"}


def attachment_payload(alert: Alert, target: Target, colors: dict[Severity, str]) -> dict[str, Any]:
    """The Slack-compatible message body shared by Slack, Discord (``/slack``) and Rocket.Chat."""
    payload: dict[str, Any] = {"username": target.username, "icon_emoji": ":rocket:"}
    if target.channel:
        payload["channel"] = target.channel
    payload["attachments"] = [
        {
            "color": colors[alert.severity],
            "author_name": alert.subject,
            "text": alert.message,
            "fallback": f"{alert.subject}: {alert.message}",
            "mrkdwn_in": ["text"],
            "fields": [{"title": name, "value": value, "short": False} for name, value in alert.fields],
        }
    ]
    return payload


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The Slack message for ``alert``."""
    return attachment_payload(alert, target, COLORS)


def endpoint(address: str) -> str:
    """Slack takes the webhook URL as given."""
    return address
