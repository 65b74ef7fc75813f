"""The test suite on a clone without ``../shared``: one message saying what is missing and how to get it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT


def test_missing_gateway_api_crds_stop_the_suite_with_one_message(tmp_path: Path) -> None:
    env = {**os.environ, "FLAGGERPY_GATEWAY_CRDS": str(tmp_path / "no-shared"), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stdout == ""  # nothing ran, nothing was collected
    assert done.stderr.count("Gateway API v1.6.1") == 1
    assert str(tmp_path / "no-shared") in done.stderr
    assert "git clone --depth 1 --branch v1.6.1 https://github.com/kubernetes-sigs/gateway-api" in done.stderr
