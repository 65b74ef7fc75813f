"""Microsoft Teams: an Adaptive Card in a ``message`` envelope.

Adaptive Cards are what Teams Workflows webhooks accept, and classic incoming webhooks render them too; the older
MessageCard format Flagger sends works only with the retired Office 365 connectors.
"""

from __future__ import annotations

from typing import Any

from flaggerpy.alerts.message import Alert, Severity, Target

# Adaptive Card text colours; they follow the Teams theme (light, dark, high contrast).
COLORS: dict[Severity, str] = {Severity.INFO: "Good", Severity.WARN: "Warning", Severity.ERROR: "Attention"}
CARD_VERSION = "1.4"


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The Teams message for ``alert``."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": alert.subject,
            "weight": "Bolder",
            "size": "Medium",
            "color": COLORS[alert.severity],
        },
        {"type": "TextBlock", "text": alert.message, "wrap": True},
    ]
    if alert.fields:
        body.append({"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in alert.fields]})
    return {
        "type": "message",
        "summary": f"{alert.subject}: {alert.message}",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": CARD_VERSION,
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


def endpoint(address: str) -> str:
    """Teams takes the webhook URL as given."""
    return address
