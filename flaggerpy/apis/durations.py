"""Go-style durations (``30s``, ``1m30s``, ``500ms``, ``1h``) as Flagger writes them in intervals and timeouts."""

from __future__ import annotations

import re

from flaggerpy.apis.errors import FieldError, SpecError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")


def duration_problem(text: object) -> str | None:
    """Why ``text`` is not a duration, or None when it is one."""
    if not isinstance(text, str):
        return f"must be a duration such as 30s or 1m, not {type(text).__name__}"
    if text == "0" or _WHOLE.match(text):
        return None
    return f'"{text}" is not a duration'


def parse_duration(text: str, field: str = "duration") -> float:
    """Seconds in a Go duration string such as ``1m30s``; ``field`` names the setting in the error.

    Raises :class:`SpecError` (``spec.analysis.interval: "1x" is not a duration``) for anything else, including
    negative values, which no Flagger setting allows.
    """
    problem = duration_problem(text)
    if problem is not None:
        raise SpecError([FieldError(field, problem)], kind="duration")
    return sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest Go duration string for ``seconds`` (``90`` → ``1m30s``, ``0.5`` → ``500ms``)."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs:
        out += f"{secs}s"
    if millis:
        out += f"{millis}ms"
    return out or "0s"
