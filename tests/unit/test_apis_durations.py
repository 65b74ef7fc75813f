"""Go-style durations as Flagger writes them in intervals and timeouts."""

from __future__ import annotations

import pytest

from flaggerpy.apis.durations import format_duration, parse_duration
from flaggerpy.apis.errors import SpecError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2h45m10s", 9910.0),
        ("0", 0.0),
        ("10us", 1e-5),
    ],
)
def test_parses_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1x", "", "60", "-1m", "1 m", "m", "1m 30s", "1d"])
def test_rejects_non_durations_naming_the_field(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(text, "spec.analysis.interval")
    assert [str(e) for e in info.value.errors] == [f'spec.analysis.interval: "{text}" is not a duration']


def test_rejects_non_strings() -> None:
    with pytest.raises(SpecError, match=r"spec\.analysis\.interval: must be a duration"):
        parse_duration(60, "spec.analysis.interval")  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (0.5, "500ms"), (3600, "1h"), (0, "0s")])
def test_formats_durations_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
