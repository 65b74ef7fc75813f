"""The Flagger webhook payload as the load tester receives it, with errors that name the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class PayloadError(ValueError):
    """The request body is not a Flagger webhook payload; the message names the field."""


@dataclass(frozen=True)
class WebhookPayload:
    """Flagger's ``CanaryWebhookPayload``: who is calling, and the hook's ``metadata`` (string values only)."""

    name: str
    namespace: str
    phase: str = ""
    checksum: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def canary(self) -> str:
        """``name.namespace``, the way Flagger names a canary in logs."""
        return f"{self.name}.{self.namespace}"


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{key}: must be a string, got {type(value).__name__}")
    return value


def parse_payload(body: bytes) -> WebhookPayload:
    """Decode a JSON payload; raises PayloadError for anything Flagger itself would not have sent."""
    try:
        obj = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise PayloadError("body: must be a JSON object with name, namespace and metadata")
    raw_metadata = obj.get("metadata") or {}
    if not isinstance(raw_metadata, dict):
        raise PayloadError("metadata: must be an object of string values")
    metadata: dict[str, str] = {}
    for key, value in raw_metadata.items():
        if not isinstance(value, str):
            raise PayloadError(f"metadata.{key}: must be a string, got {type(value).__name__}")
        metadata[key] = value
    return WebhookPayload(
        name=_string(obj, "name"),
        namespace=_string(obj, "namespace"),
        phase=_string(obj, "phase"),
        checksum=_string(obj, "checksum"),
        metadata=metadata,
    )


def parse_bool(value: str, field_name: str) -> bool:
    """Go's ``strconv.ParseBool`` spellings; raises PayloadError naming ``field_name`` otherwise."""
    text = value.strip()
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise PayloadError(f"{field_name}: {value!r} is not a boolean (true or false)")
