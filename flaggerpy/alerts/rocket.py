"""Rocket.Chat incoming webhooks: Slack-style attachments, coloured with hex codes as Rocket.Chat expects."""

from __future__ import annotations

from typing import Any

from flaggerpy.alerts.message import Alert, Severity, Target
from flaggerpy.alerts.slack import attachment_payload

COLORS: dict[Severity, str] = {Severity.INFO: "#0076D7", Severity.WARN: "#FFA500", Severity.ERROR: "#FF0000"}


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The Rocket.Chat message for ``alert``."""
    return attachment_payload(alert, target, COLORS)


def endpoint(address: str) -> str:
    """Rocket.Chat takes the webhook URL as given."""
    return address
