"""What one reconcile asks of the work queue, and the one place that acts on it.

A reconciler returns a :class:`Result`; :func:`handle_result` turns it into ``forget``, ``add_after`` or
``add_rate_limited``, the way controller-runtime's ``reconcileHandler`` does. Only a success forgets the key's
backoff: a conflict or an error requeues with a backoff that keeps growing until the key succeeds again.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from flaggerpy.kube.errors import ApiError
from flaggerpy.log import get_logger

log = get_logger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class Outcome(enum.Enum):
    """How a reconcile ended."""

    DONE = "done"
    """Nothing more to do until an event wakes the key."""
    REQUEUE_AFTER = "requeue_after"
    """Look again after :attr:`Result.after` seconds (the time between steps); resets the backoff."""
    CONFLICT = "conflict"
    """Someone else wrote first (409): try again after the key's backoff, from a fresher cache."""
    FAILED = "failed"
    """An error: try again after the key's backoff."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one reconcile; build it with the class methods."""

    outcome: Outcome
    after: float = 0.0
    error: BaseException | None = None

    @classmethod
    def done(cls) -> Result:
        """Success; wait for the next event."""
        return _DONE

    @classmethod
    def requeue_after(cls, seconds: float) -> Result:
        """Success; look again after ``seconds`` (0: as soon as a worker is free)."""
        return cls(Outcome.REQUEUE_AFTER, after=max(0.0, seconds))

    @classmethod
    def conflict(cls, error: BaseException) -> Result:
        """A write was refused with 409 Conflict."""
        return cls(Outcome.CONFLICT, error=error)

    @classmethod
    def failed(cls, error: BaseException) -> Result:
        """The reconcile raised ``error``."""
        return cls(Outcome.FAILED, error=error)

    @property
    def label(self) -> str:
        """The ``result`` label of the reconcile metrics: success, conflict or error."""
        if self.outcome is Outcome.CONFLICT:
            return "conflict"
        if self.outcome is Outcome.FAILED:
            return "error"
        return "success"

    @property
    def succeeded(self) -> bool:
        """Whether the reconcile did its work (done or requeue after)."""
        return self.outcome in (Outcome.DONE, Outcome.REQUEUE_AFTER)


_DONE = Result(Outcome.DONE)


class RateLimitedQueue(Protocol[K_contra]):
    """The queue operations a result maps onto (:class:`~flaggerpy.kube.workqueue.WorkQueue` has them)."""

    @property
    def name(self) -> str:
        """The queue's name, for logs."""

    def forget(self, key: K_contra) -> None:
        """Reset the key's backoff."""

    def add_after(self, key: K_contra, delay: float) -> None:
        """Add the key after ``delay`` seconds."""

    def add_rate_limited(self, key: K_contra) -> float:
        """Add the key after its backoff; the delay used."""


def handle_result(queue: RateLimitedQueue[K], key: K, result: Result) -> float | None:
    """Act on ``result`` for ``key``: the one switch from reconcile outcome to queue operation.

    Returns the delay until the key is looked at again (None: only an event brings it back).
    """
    match result.outcome:
        case Outcome.DONE:
            queue.forget(key)
            return None
        case Outcome.REQUEUE_AFTER:
            queue.forget(key)
            queue.add_after(key, result.after)
            return result.after
        case Outcome.CONFLICT:
            delay = queue.add_rate_limited(key)
            log.info("conflict; retrying", queue=queue.name, key=str(key), retry_in=round(delay, 3))
            return delay
        case Outcome.FAILED:
            delay = queue.add_rate_limited(key)
            # An API error explains itself; a traceback is for the bugs (and rendering one costs milliseconds).
            api_error = isinstance(result.error, ApiError)
            log.error("work item failed; requeued", queue=queue.name, key=str(key), retry_in=round(delay, 3),
                      error=str(result.error) if api_error else None, exc_info=None if api_error else result.error)
            return delay
