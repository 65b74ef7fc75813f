"""Go-style durations (``1h``, ``1m30s``, ``500ms``) for the load tester's flags.

The load tester may only depend on ``flaggerpy.log``, so it parses its own durations instead of reusing the
controller's API helpers.
"""

from __future__ import annotations

import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError naming the text when it is not one."""
    value = text.strip()
    if value == "0":
        return 0.0
    if not value:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 1m30s, 1h)")
    total = 0.0
    position = 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 1m30s, 1h)")
    return total
