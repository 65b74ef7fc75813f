"""``flaggerpy demo`` with a real Prometheus scraping the sandbox's data plane: same releases, same verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.prometheus_fixture import PROMETHEUS_BINARY, requires_prometheus

pytestmark = [pytest.mark.e2e, requires_prometheus]

REPO = Path(__file__).resolve().parents[2]


def _demo(*flags: str) -> subprocess.CompletedProcess[str]:
    # The demo looks for "prometheus" on PATH; make sure the one the fixture found is there.
    path = os.pathsep.join([str(Path(PROMETHEUS_BINARY).parent), os.environ.get("PATH", "")])
    return subprocess.run([sys.executable, "-m", "flaggerpy.cli", "demo", "--prometheus", "real", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PATH": path})


@pytest.mark.parametrize(("flags", "expected"), [
    ((), "demo passed: release of podinfo 6.0.2 Succeeded as expected"),
    (("--faulty",), "demo passed: release of podinfo 6.0.2 Failed as expected"),
])
def test_demo_against_real_prometheus(flags: tuple[str, ...], expected: str) -> None:
    result = _demo(*flags)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "metrics: Prometheus at http://127.0.0.1:" in result.stdout
    assert lines[-1].startswith(expected)
