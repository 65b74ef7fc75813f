"""``flaggerpy get`` and ``get --watch`` on terminals of different widths, against the sandbox over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re

import pytest

from flaggerpy.ctl.get import get, watch
from flaggerpy.kube.api import KubeClient
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, wait_for
from tests.integration.test_ctl_commands import put_canary, put_event
from tests.manifests import NAMESPACE

MESSAGE = "Halt podinfo.test advancement request-success-rate 91.2 < 99"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """Output that says it is a terminal, as a user's shell would."""

    def isatty(self) -> bool:
        return True


def screen(out: io.StringIO) -> list[str]:
    """What the terminal shows, without colours and cursor movements."""
    return [line.rstrip() for line in ANSI.sub("", out.getvalue()).replace("\r", "\n").splitlines() if line.strip()]


def assert_fits(lines: list[str], width: int) -> None:
    """Nothing wider than the terminal, and NAME, PHASE and WEIGHT and their values never dropped."""
    assert all(len(line) <= width for line in lines), lines
    header = next(line for line in lines if line.startswith("NAME"))
    assert header.split()[:3] == ["NAME", "PHASE", "WEIGHT"]
    assert any(line.split()[:3] == ["podinfo", "Progressing", "30%"] for line in lines), lines
    # The message is never dropped either: cut with an ellipsis on one line, or whole on wrapped lines.
    text = " ".join(lines)
    assert MESSAGE in " ".join(text.split()) or ("Halt podinfo.test" in text and "…" in text)


@pytest.fixture
async def progressing(cluster: Cluster) -> None:
    await put_canary(cluster, "podinfo", {"phase": "Progressing", "canaryWeight": 30, "failedChecks": 1,
                                          "lastTransitionTime": "2026-11-22T01:02:03Z"})
    await put_event(cluster, "podinfo", MESSAGE, "2026-11-22T01:02:03Z")


@pytest.mark.parametrize("width", [40, 60, 120])
async def test_get_on_a_terminal_fits_its_width(sandbox: Sandbox, progressing: None, width: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    out = Terminal()
    args = argparse.Namespace(all_namespaces=False, namespace=NAMESPACE, kubeconfig=str(sandbox.kubeconfig_path),
                              context=None, watch=False, output_plain=False)
    assert await get(args, out) == 0
    lines = screen(out)
    assert_fits(lines, width)
    assert ("MESSAGE" in lines[0]) is (width == 120)


@pytest.mark.parametrize("width", [40, 60, 120])
async def test_get_watch_on_a_terminal_fits_its_width(sandbox: Sandbox, cluster: Cluster, progressing: None,
                                                      width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    out = Terminal()
    async with KubeClient(kubeconfig=str(sandbox.kubeconfig_path)) as kube:
        task = asyncio.create_task(watch(kube, NAMESPACE, out, tty=True))
        await wait_for(lambda: "Progressing" in out.getvalue(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert_fits(screen(out), width)
