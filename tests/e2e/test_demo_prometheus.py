"""``flaggerpy demo`` with a real Prometheus scraping the sandbox's data plane: same releases, same verdicts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def _children(pid: int) -> list[int]:
    listing = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in listing.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_while_prometheus_starts_stops_it_too() -> None:
    path = os.pathsep.join([str(Path(PROMETHEUS_BINARY).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "flaggerpy.cli", "demo", "--prometheus", "real"], cwd=REPO,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PATH": path})
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if "starting the metrics backend" in line:
                break
        children: list[int] = []
        deadline = time.monotonic() + 10
        while not children and time.monotonic() < deadline:
            children = _children(process.pid)
            time.sleep(0.05)
        assert children, "prometheus was started as a child process"
        process.send_signal(signal.SIGINT)
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rest.strip().splitlines()[-1] == "demo interrupted: sandbox and controller stopped"
    assert not [pid for pid in children if _alive(pid)], "no prometheus is left behind"
