"""Discord webhooks through their Slack-compatible endpoint (``<webhook>/slack``), as Flagger does."""

from __future__ import annotations

from typing import Any

from yarl import URL

from flaggerpy.alerts.message import Alert, Severity, Target
from flaggerpy.alerts.slack import attachment_payload

# Discord's Slack compatibility layer reads attachment colours as hex codes.
COLORS: dict[Severity, str] = {Severity.INFO: "#2EB67D", Severity.WARN: "#ECB22E", Severity.ERROR: "#E01E5A"}


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The Slack-formatted Discord message for ``alert``."""
    return attachment_payload(alert, target, COLORS)


def endpoint(address: str) -> str:
    """The webhook URL with ``/slack`` appended (kept when already there), the query string preserved."""
    url = URL(address)
    if url.path.rstrip("/").endswith("/slack"):
        return address
    return str(url.with_path(url.path.rstrip("/") + "/slack").with_query(url.query))
