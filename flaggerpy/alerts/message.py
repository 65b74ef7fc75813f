"""What an alert says and where it goes, independent of any chat service."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """Alert severities, lowest first. An alert subscribed at one level receives that level and the ones above."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Position in the order info < warn < error."""
        return _ORDER.index(self)

    def admits(self, severity: Severity) -> bool:
        """Whether an alert subscribed at ``self`` receives a message of ``severity``."""
        return severity.rank >= self.rank

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """The severity named by ``text``; an empty value is ``info`` (Flagger's default)."""
        if not text:
            return cls.INFO
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"severity: {text!r} is not one of info, warn, error") from None


_ORDER = (Severity.INFO, Severity.WARN, Severity.ERROR)


@dataclass(frozen=True)
class Alert:
    """One message about one canary. ``fields`` are shown as a key/value table where the service has one."""

    name: str
    namespace: str
    message: str
    severity: Severity
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def subject(self) -> str:
        """``name.namespace``, the way Flagger names a canary in alerts."""
        return f"{self.name}.{self.namespace}"


@dataclass(frozen=True)
class Target:
    """A resolved destination: the service type, its webhook URL and the optional bearer token, proxy and names."""

    type: str
    url: str
    token: str = ""
    proxy: str = ""
    username: str = ""
    channel: str = ""
    # Only for logs: which AlertProvider (or the controller default) this is. The URL itself is a secret.
    label: str = ""
