"""A short in-memory history of scraped samples: what the sandbox's PromQL evaluates ``rate()`` and friends over.

Samples come from Prometheus text exposition (the data plane's ``/sandbox/dataplane/metrics`` document), scraped
on a fixed interval like a real Prometheus would, with ``job`` and ``instance`` labels added. A series missing from
a scrape gets a staleness marker, so it drops out of instant queries at once instead of lingering for the lookback.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class ExpositionError(ValueError):
    """A line of text exposition that is not a valid sample."""


def _unescape(value: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group()], value)


def _value(text: str) -> float:
    special = {"+inf": math.inf, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}
    lowered = text.lower()
    if lowered in special:
        return special[lowered]
    return float(text)


def parse_exposition(text: str) -> Iterator[tuple[Labels, float]]:
    """(sorted labels including ``__name__``, value) for every sample line; ExpositionError on a bad line."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ExpositionError(f"line {number}: not a sample: {line[:80]!r}")
        name, body, raw = match.group(1), match.group(2) or "", match.group(3)
        labels = {"__name__": name}
        pos = 0
        while pos < len(body):
            label = _LABEL.match(body, pos)
            if label is None:
                raise ExpositionError(f"line {number}: bad labels: {body[:80]!r}")
            labels[label.group(1)] = _unescape(label.group(2))
            pos = label.end()
        try:
            value = _value(raw)
        except ValueError:
            raise ExpositionError(f"line {number}: value {raw!r} is not a number") from None
        yield tuple(sorted(labels.items())), value


@dataclass
class Series:
    """One series' samples, oldest first; a ``None`` value is a staleness marker."""

    labels: Labels
    samples: deque[tuple[float, float | None]] = field(default_factory=deque)

    def label(self, name: str) -> str:
        """A label's value, empty when absent (PromQL treats both the same)."""
        for key, value in self.labels:
            if key == name:
                return value
        return ""


class SampleStore:
    """Series by label set, each keeping samples for ``retention`` seconds."""

    def __init__(self, retention: float = 600.0) -> None:
        self.retention = retention
        self._series: dict[Labels, Series] = {}
        self.last_scrape: float | None = None

    def append(self, timestamp: float, samples: dict[Labels, float]) -> None:
        """Record one scrape at ``timestamp``: its samples, and staleness for series it no longer has."""
        for labels, value in samples.items():
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = Series(labels)
            series.samples.append((timestamp, value))
        for labels, series in self._series.items():
            if labels not in samples and series.samples and series.samples[-1][1] is not None:
                series.samples.append((timestamp, None))
        self._expire(timestamp - self.retention)
        self.last_scrape = timestamp

    def _expire(self, horizon: float) -> None:
        empty = []
        for labels, series in self._series.items():
            while series.samples and series.samples[0][0] < horizon:
                series.samples.popleft()
            if not series.samples:
                empty.append(labels)
        for labels in empty:
            del self._series[labels]

    def series(self) -> list[Series]:
        """Every series still holding samples."""
        return list(self._series.values())

    def __len__(self) -> int:
        return len(self._series)
