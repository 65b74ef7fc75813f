"""Rate limiters in client-go's shape: a token bucket, a per-item exponential backoff, their combination, and the
jittered backoff that starts over after a quiet period (the reflector's).

The token bucket bounds the whole client (client-go's ``flowcontrol`` limiter behind ``rest.Config.QPS/Burst``,
Flagger's ``-kubeconfig-qps``/``-kubeconfig-burst``) and the work queue's overall requeue rate; the per-item backoff
makes one failing key wait longer each time (client-go's ``ItemExponentialFailureRateLimiter``). The work queue uses
the larger of both delays, as client-go's ``DefaultControllerRateLimiter`` does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved up; a caller that finds none reserves the next one.

    :meth:`reserve` never blocks: it takes a token (going into debt when none is left) and says how long the
    caller must wait before acting, so callers are served in the order they asked, and a request pays one
    subtraction and a clock read, nothing more.
    """

    def __init__(self, qps: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"token bucket: need qps > 0 and burst >= 1, got qps={qps}, burst={burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; seconds to wait before using it (0.0 when one was in the bucket)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class ItemBackoff(Generic[K]):
    """Per-key exponential backoff: ``base * 2**failures``, capped; :meth:`forget` starts a key over."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """Count one more failure of ``key``; the delay before its next try."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Past 2**60 the float only overflows towards the cap anyway.
        return min(self.base * 2.0 ** min(failures, 60), self.cap)

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next failure waits ``base`` again."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        """Failures of ``key`` since it was last forgotten."""
        return self._failures.get(key, 0)


class ControllerRateLimiter(Generic[K]):
    """The larger of a key's own backoff and the shared bucket's wait (client-go's default controller limiter):
    one key failing backs off exponentially, and many keys failing at once still requeue at ``qps`` overall."""

    def __init__(self, backoff: ItemBackoff[K], bucket: TokenBucket) -> None:
        self.backoff = backoff
        self.bucket = bucket

    def when(self, key: K) -> float:
        """The delay before ``key``'s next try (counts one failure)."""
        return max(self.backoff.when(key), self.bucket.reserve())

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff (the bucket has no per-key memory)."""
        self.backoff.forget(key)

    def failures(self, key: K) -> int:
        """Rate-limited requeues of ``key`` since it was last forgotten."""
        return self.backoff.failures(key)


class Backoff:
    """Jittered exponential backoff for one retry loop that starts over after a quiet period, like the reflector's
    ``ExponentialBackoffManager``: ``min(initial * 2**n, cap) + jitter * random()`` for the n-th consecutive delay.

    ``immediate_first``: the first delay after a quiet period is 0 (one 410 after a compaction relists at once;
    only a server that keeps answering 410 is slowed down).
    """

    def __init__(
        self,
        initial: float,
        cap: float,
        jitter: float,
        reset_after: float,
        *,
        immediate_first: bool = False,
        clock: Clock = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self.reset_after = reset_after
        self._immediate_first = immediate_first
        self._clock = clock
        self._rng = rng
        self._attempt = 0
        self._last: float | None = None

    def next_delay(self) -> float:
        """The delay before the next try; grows with each call until ``reset_after`` passes without one."""
        now = self._clock()
        if self._last is not None and now - self._last >= self.reset_after:
            self._attempt = 0
        self._last = now
        attempt = self._attempt
        self._attempt += 1
        if self._immediate_first:
            if attempt == 0:
                return 0.0
            attempt -= 1
        return min(self.initial * 2.0 ** min(attempt, 60), self.cap) + self.jitter * self._rng()

    def reset(self) -> None:
        """Start over: the loop was healthy long enough."""
        self._attempt = 0
        self._last = None
