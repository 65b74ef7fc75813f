"""``flaggerpy demo`` as a user runs it: a subprocess without a terminal, judged by its lines and exit code.

These use the sandbox's own PromQL (no external binaries); tests/e2e/test_demo_prometheus.py repeats the release
against a real Prometheus.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 90.0


def demo_command(*flags: str) -> list[str]:
    """The command line of ``flaggerpy demo`` with ``flags``."""
    return [sys.executable, "-m", "flaggerpy.cli", "demo", *flags]


def run_demo(*flags: str) -> subprocess.CompletedProcess[str]:
    """Run the demo to completion; its output as text."""
    return subprocess.run(demo_command(*flags), cwd=REPO, capture_output=True, text=True, timeout=DEMO_TIMEOUT,
                          check=False, env={**os.environ, "COLUMNS": "160"})


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Non-empty stdout lines."""
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_demo_promotes_the_new_version_and_says_so() -> None:
    result = run_demo("--prometheus", "sandbox")
    lines = lines_of(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1].startswith("demo passed: release of podinfo 6.0.2 Succeeded as expected")
    assert "primary runs 6.0.2, 100% of traffic on the primary" in lines[-1]
    # Where the controller's Prometheus metrics were, just above the verdict.
    assert lines[-2].startswith("controller metrics were served at http://127.0.0.1:") and "/metrics" in lines[-2]
    output = result.stdout
    # Every step of the release is visible: weights as they grow, the checks at each weight, the Events.
    for weight in (10, 20, 30, 40, 50):
        assert f"weights primary {100 - weight}% canary {weight}%" in output
        assert f"event Normal Synced: Advance podinfo.test canary weight {weight}" in output
    assert "checks at canary 50%: request-success-rate=100.00 (min 99) ok" in output
    assert "phase Promoting" in output and "phase Succeeded" in output
    # Plain output: no terminal control sequences in a CI log.
    assert "\x1b[" not in output


def test_demo_faulty_rolls_back_and_exits_zero() -> None:
    result = run_demo("--faulty", "--prometheus", "sandbox")
    lines = lines_of(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1].startswith("demo passed: release of podinfo 6.0.2 Failed as expected")
    assert "rolled back: primary still runs 6.0.1, 100% of traffic on the primary" in lines[-1]
    output = result.stdout
    assert "failed checks 3/3" in output
    assert "event Warning Synced: Rolling back podinfo.test failed checks threshold reached 3" in output
    assert "weights primary 50% canary 50%" not in output
    failing = [line for line in lines if "checks at canary" in line and "request-success-rate=" in line
               and "FAIL" in line and "no data" not in line.split("request-success-rate=")[1][:8]]
    assert failing, "a failed success-rate check with its measured value is shown"


def test_bad_flags_are_refused_with_the_flag_named() -> None:
    result = run_demo("--rps", "0", "--threshold", "0")
    assert result.returncode == 2
    assert "--rps: must be > 0" in result.stderr
    assert "--threshold: must be >= 1" in result.stderr
    result = run_demo("--interval", "banana")
    assert result.returncode == 2
    assert 'spec.analysis.interval: "banana" is not a duration' in result.stderr


async def _read_until(stream: asyncio.StreamReader, marker: str, within: float) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(within):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"output ended before {marker!r}: {seen}")
            seen.append(raw.decode().rstrip("\n"))
            if marker in seen[-1]:
                return seen


async def test_ctrl_c_mid_release_stops_everything_and_exits_130() -> None:
    process = await asyncio.create_subprocess_exec(
        *demo_command("--prometheus", "sandbox"), cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        await _read_until(process.stdout, "canary weight 10", DEMO_TIMEOUT)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest = (await process.stdout.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 130, rest
    assert rest.strip().splitlines()[-1] == "demo interrupted: sandbox and controller stopped"


async def test_keep_leaves_a_sandbox_kubectl_can_use_until_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        *demo_command("--prometheus", "sandbox", "--keep"), cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        lines = await _read_until(process.stdout, "press Ctrl-C to stop", DEMO_TIMEOUT)
        hint = next(line for line in lines if "KUBECONFIG=" in line)
        kubeconfig = hint.split("KUBECONFIG=")[1].split()[0]
        assert os.path.isfile(kubeconfig)  # noqa: ASYNC240 - a test-side check of one local file
        if shutil.which("kubectl"):
            listing = await asyncio.create_subprocess_exec(
                "kubectl", "--kubeconfig", kubeconfig, "-n", "test", "get", "canaries",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(listing.communicate(), 30)
            assert listing.returncode == 0, err.decode()
            assert "Succeeded" in out.decode()
            # The controller and the traffic are still there: another image is another release, shown live.
            bump = await asyncio.create_subprocess_exec(
                "kubectl", "--kubeconfig", kubeconfig, "-n", "test", "set", "image", "deployment/podinfo",
                "podinfod=ghcr.io/stefanprodan/podinfo:6.0.3",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(bump.communicate(), 30)
            assert bump.returncode == 0, err.decode()
            await _read_until(process.stdout, "== release 2: ghcr.io/stefanprodan/podinfo:6.0.3: Succeeded: promoted",
                              DEMO_TIMEOUT)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest = (await process.stdout.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, rest
    verdict = rest.strip().splitlines()[-1]
    if shutil.which("kubectl"):
        # The last word is about the release the user made last, not the demo's own.
        assert verdict.startswith("demo passed (release 1: Succeeded); latest: release 2 "
                                  "(ghcr.io/stefanprodan/podinfo:6.0.3) Succeeded: promoted after "), verdict
        assert verdict.endswith("primary runs 6.0.3, 100% of traffic on the primary")
    else:
        assert verdict.startswith("demo passed: release of podinfo 6.0.2 Succeeded")
    assert not os.path.exists(kubeconfig), "the temporary kubeconfig is removed on exit"  # noqa: ASYNC240


def test_real_prometheus_without_the_binary_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(demo_command("--prometheus", "real"), cwd=REPO, capture_output=True, text=True,
                            timeout=DEMO_TIMEOUT, check=False, env=env)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == (
        "demo failed: --prometheus real: no 'prometheus' executable on PATH (use auto or sandbox)")


def _broken_prometheus(directory: Path) -> dict[str, str]:
    """An environment whose PATH finds a 'prometheus' that dies at once."""
    binary = directory / "prometheus"
    binary.write_text("#!/bin/sh\necho 'err: cannot open storage' >&2\nexit 1\n")
    binary.chmod(0o755)
    return {**os.environ, "PATH": os.pathsep.join([str(directory), os.environ.get("PATH", "")])}


def test_auto_falls_back_to_sandbox_promql_when_prometheus_cannot_start(tmp_path: Path) -> None:
    result = subprocess.run(demo_command("--faulty"), cwd=REPO, capture_output=True, text=True,
                            timeout=DEMO_TIMEOUT, check=False, env=_broken_prometheus(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "err: cannot open storage; using the sandbox's PromQL instead" in result.stdout
    assert "metrics: sandbox PromQL" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("demo passed: release of podinfo 6.0.2 Failed")


def test_real_prometheus_that_cannot_start_fails_the_demo_with_its_error(tmp_path: Path) -> None:
    result = subprocess.run(demo_command("--prometheus", "real"), cwd=REPO, capture_output=True, text=True,
                            timeout=DEMO_TIMEOUT, check=False, env=_broken_prometheus(tmp_path))
    assert result.returncode == 1
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("demo failed: prometheus did not become ready on http://127.0.0.1:")
    assert "err: cannot open storage" in last
