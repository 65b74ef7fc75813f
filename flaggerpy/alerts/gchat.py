"""Google Chat incoming webhooks: a ``cardsV2`` card with a header, the message and one row per field."""

from __future__ import annotations

import html
from typing import Any

from flaggerpy.alerts.message import Alert, Severity, Target

# Google Chat renders a small HTML subset in textParagraph; these are its own palette's green, amber and red.
COLORS: dict[Severity, str] = {Severity.INFO: "#188038", Severity.WARN: "#E37400", Severity.ERROR: "#D93025"}
LABELS: dict[Severity, str] = {Severity.INFO: "info", Severity.WARN: "warning", Severity.ERROR: "error"}


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The Google Chat message for ``alert``; user text is HTML-escaped."""
    sections: list[dict[str, Any]] = [
        {
            "widgets": [
                {
                    "textParagraph": {
                        "text": f'<font color="{COLORS[alert.severity]}"><b>{html.escape(alert.message)}</b></font>'
                    }
                }
            ]
        }
    ]
    if alert.fields:
        sections.append(
            {
                "widgets": [
                    {"decoratedText": {"topLabel": html.escape(name), "text": html.escape(value)}}
                    for name, value in alert.fields
                ]
            }
        )
    return {
        "cardsV2": [
            {
                "cardId": f"flaggerpy-{alert.namespace}-{alert.name}",
                "card": {
                    "header": {"title": alert.subject, "subtitle": f"flaggerpy {LABELS[alert.severity]}"},
                    "sections": sections,
                },
            }
        ]
    }


def endpoint(address: str) -> str:
    """Google Chat takes the webhook URL (with its key and token query) as given."""
    return address
