"""Generic JSON webhooks: the alert as a flat, documented object for any HTTP receiver.

Body: ``{"source": "flaggerpy", "name", "namespace", "severity", "message", "fields": {name: value}, "timestamp"}``
with ``timestamp`` in RFC 3339 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flaggerpy.alerts.message import Alert, Target


def payload(alert: Alert, target: Target) -> dict[str, Any]:
    """The generic JSON body for ``alert``."""
    return {
        "source": "flaggerpy",
        "name": alert.name,
        "namespace": alert.namespace,
        "severity": str(alert.severity),
        "message": alert.message,
        "fields": dict(alert.fields),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def endpoint(address: str) -> str:
    """A generic receiver takes the URL as given."""
    return address
