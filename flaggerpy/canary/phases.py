"""Canary phases (Flagger's ``status.phase`` values) and the transitions the engine may take between them.

The table is data so that a test can hold it against design.md's state machine and so that the reconciler refuses
an illegal move loudly instead of writing a status Flagger users would not recognise.
"""

from __future__ import annotations

import enum
from types import MappingProxyType


class Phase(enum.StrEnum):
    """Flagger's canary phases, spelled exactly as Flagger writes them into ``status.phase``."""

    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"

    @classmethod
    def parse(cls, value: str | None) -> Phase | None:
        """The phase written in a status, or None for a canary never seen before (empty or unknown phase)."""
        if not value:
            return None
        try:
            return cls(value)
        except ValueError:
            return None


_ANY_LIVE = frozenset(Phase) - {Phase.TERMINATING, Phase.TERMINATED}

# Every phase may also move to itself (a step that only changes weight, iterations or failedChecks) and, while the
# canary lives, to Terminating (deletion with revertOnDeletion). Those are added below rather than repeated here.
_NEXT: dict[Phase | None, frozenset[Phase]] = {
    None: frozenset({Phase.INITIALIZING}),
    Phase.INITIALIZING: frozenset({Phase.INITIALIZED}),
    Phase.INITIALIZED: frozenset({Phase.PROGRESSING, Phase.WAITING}),
    Phase.WAITING: frozenset({Phase.PROGRESSING, Phase.FAILED}),
    Phase.PROGRESSING: frozenset({Phase.PROMOTING, Phase.WAITING_PROMOTION, Phase.FAILED, Phase.WAITING}),
    Phase.WAITING_PROMOTION: frozenset({Phase.PROMOTING, Phase.PROGRESSING, Phase.FAILED}),
    Phase.PROMOTING: frozenset({Phase.FINALISING, Phase.PROGRESSING, Phase.FAILED}),
    Phase.FINALISING: frozenset({Phase.SUCCEEDED, Phase.PROGRESSING}),
    Phase.SUCCEEDED: frozenset({Phase.PROGRESSING, Phase.WAITING}),
    Phase.FAILED: frozenset({Phase.PROGRESSING, Phase.WAITING}),
    Phase.TERMINATING: frozenset({Phase.TERMINATED}),
    Phase.TERMINATED: frozenset(),
}

TRANSITIONS: MappingProxyType[Phase | None, frozenset[Phase]] = MappingProxyType(
    {
        src: targets | ({src} if src is not None else set()) | ({Phase.TERMINATING} if src in _ANY_LIVE else set())
        for src, targets in _NEXT.items()
    }
)

# Phases in which a canary is being analysed or promoted: the ones --max-concurrent-canaries counts.
ACTIVE: frozenset[Phase] = frozenset(
    {Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING}
)

# Phases that end a revision: a new revision may start from here (and from Initialized).
IDLE: frozenset[Phase] = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})


class IllegalTransition(RuntimeError):
    """The engine tried a move the state machine does not allow: a bug, never a user error."""


def allowed(src: Phase | None, dst: Phase) -> bool:
    """Whether the state machine allows moving from ``src`` (None for a new canary) to ``dst``."""
    return dst in TRANSITIONS.get(src, frozenset())


def check(src: Phase | None, dst: Phase) -> None:
    """Raise :class:`IllegalTransition` unless ``src`` → ``dst`` is in the table."""
    if not allowed(src, dst):
        raise IllegalTransition(f"illegal canary phase transition {src or '(new)'} -> {dst}")
