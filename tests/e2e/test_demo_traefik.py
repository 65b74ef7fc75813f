"""``flaggerpy demo --gateway traefik``: the demo's release through the real Traefik, judged on Traefik's metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.prometheus_fixture import PROMETHEUS_BINARY, requires_prometheus
from tests.e2e.traefik_parts import require_traefik

pytestmark = [pytest.mark.e2e, requires_prometheus]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("flags", "expected"), [
    ((), "demo passed: release of podinfo 6.0.2 Succeeded as expected"),
    (("--faulty",), "demo passed: release of podinfo 6.0.2 Failed as expected"),
])
def test_demo_on_traefik(flags: tuple[str, ...], expected: str) -> None:
    require_traefik()
    path = os.pathsep.join([str(Path(PROMETHEUS_BINARY).parent), os.environ.get("PATH", "")])
    result = subprocess.run([sys.executable, "-m", "flaggerpy.cli", "demo", "--gateway", "traefik", "--plain",
                             *flags], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "PATH": path})
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "through Traefik on 127.0.0.1:" in result.stdout
    # The builtin checks (annotated with the traefik flavour) measured the canary's traffic on Traefik's metrics.
    assert re.search(r"checks at canary \d+%: request-success-rate=\d", result.stdout), result.stdout
    assert lines[-1].startswith(expected)
