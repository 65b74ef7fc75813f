"""Kubernetes API errors as typed exceptions, built from the API server's ``Status`` answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of ``Status.details.causes``: which field is wrong and why."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ApiError(Exception):
    """An API request failed. ``status`` is the HTTP code (0 when the server could not be reached)."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        causes: tuple[Cause, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message or reason or f"HTTP {status}"
        self.causes = causes
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = f"{self.status} {self.reason}: {self.message}" if self.reason else f"{self.status}: {self.message}"
        if self.causes:
            head += " (" + "; ".join(str(c) for c in self.causes) + ")"
        return head

    @property
    def fields(self) -> list[str]:
        """The field paths the server blamed (``details.causes[].field``), in order."""
        return [c.field for c in self.causes if c.field]


class NotFound(ApiError):
    """404: the object (or its namespace, or the resource type) does not exist."""


class Conflict(ApiError):
    """409 on an update: the resourceVersion sent is stale, someone else wrote first."""


class AlreadyExists(ApiError):
    """409 on a create: an object with that name already exists."""


class Gone(ApiError):
    """410: the requested resourceVersion is older than the server's history; relist."""


class Invalid(ApiError):
    """422: the object failed validation; ``causes`` name the fields."""


class Forbidden(ApiError):
    """403: RBAC does not allow this verb on this resource."""


class Unavailable(ApiError):
    """The server could not be reached (connection refused/reset, timeout); ``status`` is 0."""


class NotLeading(ApiError):
    """A write this process refused to send: it no longer holds the leader Lease (the client's write fence).

    Status 0 like an unreachable server, but never retried: leadership does not come back within a request.
    """


def _parse_causes(details: Any) -> tuple[Cause, ...]:
    if not isinstance(details, dict):
        return ()
    raw = details.get("causes")
    if not isinstance(raw, list):
        return ()
    return tuple(
        Cause(field=str(c.get("field", "")), reason=str(c.get("reason", "")), message=str(c.get("message", "")))
        for c in raw
        if isinstance(c, dict)
    )


def error_from_status(
    status: int, body: bytes | str | dict[str, Any] | None, retry_after: float | None = None
) -> ApiError:
    """Map an HTTP status plus a (possibly non-JSON) body to the most specific :class:`ApiError`."""
    doc: Any = body
    if isinstance(body, bytes | str):
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = {"message": body.decode(errors="replace") if isinstance(body, bytes) else body}
    if not isinstance(doc, dict):
        doc = {}
    reason = str(doc.get("reason", ""))
    message = str(doc.get("message", ""))
    causes = _parse_causes(doc.get("details"))
    cls: type[ApiError]
    if status == 404:
        cls = NotFound
    elif status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status == 410:
        cls = Gone
    elif status == 422:
        cls = Invalid
    elif status == 403:
        cls = Forbidden
    else:
        cls = ApiError
    return cls(status, reason=reason, message=message, causes=causes, retry_after=retry_after)


class ConfigError(Exception):
    """No usable cluster configuration: the kubeconfig is missing/invalid or in-cluster files are absent."""
