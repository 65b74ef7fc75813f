"""API errors answered as Kubernetes ``Status`` objects, with the reasons and messages kube-apiserver uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of ``Status.details.causes``: which field is wrong and why."""

    field: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The JSON shape kube-apiserver uses for a cause."""
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class StatusError(Exception):
    """An error that the server answers with a ``Status`` body and ``code`` as the HTTP status."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        """The ``meta/v1 Status`` object for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def qualified(group: str, plural: str) -> str:
    """``deployments.apps`` for grouped resources, ``services`` for core ones (kube's message style)."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return details


def not_found(group: str, plural: str, name: str) -> StatusError:
    """404 for a missing object."""
    return StatusError(
        404, "NotFound", f'{qualified(group, plural)} "{name}" not found', _details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> StatusError:
    """409 for a create of an object that exists."""
    return StatusError(
        409, "AlreadyExists", f'{qualified(group, plural)} "{name}" already exists', _details(group, plural, name)
    )


def conflict(group: str, plural: str, name: str) -> StatusError:
    """409 for a write with a stale ``metadata.resourceVersion``."""
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(group, plural, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> StatusError:
    """422 naming every invalid field, in kube-apiserver's message format."""
    subject = f"{kind}.{group}" if group else kind
    if len(causes) == 1:
        summary = f"{causes[0].field}: {causes[0].message}"
    else:
        summary = "[" + ", ".join(f"{c.field}: {c.message}" for c in causes) + "]"
    details: dict[str, Any] = {"kind": kind, "causes": [c.to_dict() for c in causes]}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return StatusError(422, "Invalid", f'{subject} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> StatusError:
    """400 for a request the server cannot make sense of."""
    return StatusError(400, "BadRequest", message)


def gone(requested: int, oldest: int) -> StatusError:
    """410 for a watch from a resourceVersion older than the retained history."""
    return StatusError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def method_not_allowed(message: str) -> StatusError:
    """405 for a verb the resource does not support."""
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    """415 for a patch or body type the server does not handle."""
    return StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}")


def internal(message: str) -> StatusError:
    """500, e.g. an injected fault."""
    return StatusError(500, "InternalError", message)
