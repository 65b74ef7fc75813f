"""The texts of the Events Flagger emits, in Flagger's words: users alert and grep on them.

Flagger spells a canary two ways: ``<canary name>.<namespace>`` in most messages and ``<targetRef name>.<namespace>``
in a few (new revision, starting analysis, copying, promotion completed). The two names are usually the same; the
callers pass the one Flagger uses for each message.
"""

from __future__ import annotations

from flaggerpy.analysis.base import MetricResult
from flaggerpy.analysis.builtin import DURATION, SUCCESS_RATE


def go_number(value: float) -> str:
    """A number as Go's ``%v`` prints a float64 (``99``, ``99.5``, ``99.12345``, ``1e-05``): the shortest digits
    that read back as the same value, as Python's ``repr`` (``:g`` would round to 6 digits)."""
    return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))


def go_duration(milliseconds: float) -> str:
    """Milliseconds as Go's ``time.Duration.String()`` prints them (``500ms``, ``1.5s``, ``1m30s``, ``0s``)."""
    nanos = round(milliseconds * 1_000_000)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{_trim(nanos / 1_000)}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{_trim(nanos / 1_000_000)}ms"
    seconds = nanos / 1_000_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{_trim(seconds)}s"
    if hours:
        text = f"{int(hours)}h{int(minutes)}m{text}"
    elif minutes:
        text = f"{int(minutes)}m{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def metric_halt(canary: str, target: str, provider: str, result: MetricResult, builtin: bool) -> str:
    """The Warning of a failed metric check (Flagger's ``runBuiltinMetricChecks``/``runMetricChecks``)."""
    if result.value is None:
        if result.no_data:
            if builtin:
                return (f"Halt advancement no values found for {provider} metric {result.name} probably {target} "
                        f"is not receiving traffic: {result.error or ''}").rstrip(": ")
            return f"Halt advancement no values found for custom metric: {result.name}: {result.error or ''}"
        return f"Metric query failed for {result.name}: {result.error or 'unknown error'}"
    low = result.min is not None and result.value < result.min
    bound = result.min if low else result.max
    sign = "<" if low else ">"
    if builtin and result.name == SUCCESS_RATE:
        return (f"Halt {canary} advancement success rate {result.value:.2f}% {sign} "
                f"{go_number(bound or 0.0)}%")
    if builtin and result.name == DURATION:
        return (f"Halt {canary} advancement request duration {go_duration(result.value)} {sign} "
                f"{go_duration(bound or 0.0)}")
    return f"Halt {canary} advancement {result.name} {result.value:.2f} {sign} {go_number(bound or 0.0)}"


def hook_passed(hook_type: str, name: str) -> str:
    """The Normal Event of a gate or hook that said yes (Flagger's ``scheduler_hooks.go``)."""
    return f"{hook_type.capitalize()} check {name} passed"
