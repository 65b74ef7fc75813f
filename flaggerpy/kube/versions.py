"""Ordering resourceVersions: the one place that decides whether one version of an object supersedes another.

resourceVersions are opaque to clients; equal means the same state. etcd (and the sandbox) hand out integers,
so when both sides are integers a smaller one is an older state. Anything else cannot be ordered.
"""

from __future__ import annotations


def _numbers(a: str | None, b: str | None) -> tuple[int, int] | None:
    if a and b and a.isdigit() and b.isdigit():
        return int(a), int(b)
    return None


def is_newer(new: str, old: str) -> bool:
    """Whether ``new`` supersedes ``old`` (a watch folding events): a different version that cannot be ordered
    counts as newer, a smaller integer is a stale replay."""
    if new == old:
        return False
    numbers = _numbers(new, old)
    return numbers is None or numbers[0] > numbers[1]


def is_older(cached: str | None, written: str | None) -> bool:
    """Whether a cache still shows an older state than the one we wrote (only integers can say so: otherwise the
    cache is trusted)."""
    numbers = _numbers(cached, written)
    return numbers is not None and numbers[0] < numbers[1]
