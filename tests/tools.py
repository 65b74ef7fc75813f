"""The external programs some tests need, and the one skip message each gets when it is missing."""

from __future__ import annotations

import shutil

import pytest

HEY_MISSING = "hey is not installed (apt-get install hey, or: go install github.com/rakyll/hey@latest)"
PROMETHEUS_MISSING = "prometheus is not installed (apt-get install prometheus)"


def hey_available() -> bool:
    """Whether the ``hey`` load generator is on PATH."""
    return shutil.which("hey") is not None


needs_hey = pytest.mark.skipif(not hey_available(), reason=HEY_MISSING)
