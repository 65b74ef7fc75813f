"""Manual gates keyed by canary, as flagger-loadtester keeps them: closed until someone opens them."""

from __future__ import annotations

import enum


class GateKind(enum.StrEnum):
    """The two gate families: promotion/rollout approval, and manual rollback."""

    APPROVAL = "gate"
    ROLLBACK = "rollback"


class GateStore:
    """In-memory open/closed state per (kind, canary name, namespace).

    Memory only, like flagger-loadtester's in-memory backend: a restart closes every gate, which fails safe
    (a closed gate holds a rollout; it never promotes one).
    """

    def __init__(self) -> None:
        self._open: dict[tuple[GateKind, str, str], bool] = {}

    def open(self, kind: GateKind, name: str, namespace: str) -> None:
        """Open the gate of one canary."""
        self._open[(kind, name, namespace)] = True

    def close(self, kind: GateKind, name: str, namespace: str) -> None:
        """Close the gate of one canary."""
        self._open[(kind, name, namespace)] = False

    def is_open(self, kind: GateKind, name: str, namespace: str) -> bool:
        """Whether the gate is open; a gate never touched is closed."""
        return self._open.get((kind, name, namespace), False)
