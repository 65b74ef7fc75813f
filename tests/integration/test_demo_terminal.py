"""``flaggerpy demo --keep`` on a real terminal (tmux), read off the screen as a person reads it: the opening
line, the traffic bar without colour, the measured traffic of the split on screen, one block per release with its
image and outcome, and a final verdict about the latest release."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.resources import DEPLOYMENTS
from tests import tmux

pytestmark = pytest.mark.skipif(not tmux.AVAILABLE, reason=tmux.SKIP_REASON)
BAR = re.compile(r"primary █ +(\d+)% (█*)(░*) +(\d+)% canary ░")
FIRST = "release 1: ghcr.io/stefanprodan/podinfo:6.0.2 → Succeeded: promoted"
SECOND = "release 2: ghcr.io/stefanprodan/podinfo:6.0.3"


def bar(screen: str) -> tuple[int, int, int, int] | None:
    """(primary %, primary cells, canary cells, canary %) of the traffic bar on screen (None while a redraw is
    half way through the capture)."""
    found = BAR.search(screen)
    return (int(found[1]), len(found[2]), len(found[3]), int(found[4])) if found else None


def splits(screen: str) -> bool:
    """Whether the bar shows traffic on both sides."""
    shown = bar(screen)
    return shown is not None and 0 < shown[3] < 100


async def test_the_panel_tells_each_release_apart_and_ends_with_the_latest(tmp_path: Path) -> None:
    pane = tmux.Pane(tmp_path, [sys.executable, "-m", "flaggerpy.cli", "demo", "--prometheus", "sandbox", "--keep",
                                "--interval", "1s"], width=150, height=70)
    try:
        first = await pane.wait_for(lambda s: "press Ctrl-C to stop" in s and FIRST in s and bar(s) is not None, 90)
        # The opening line says what is about to happen, not a result.
        assert "flaggerpy demo: releasing podinfo 6.0.2 as a canary in 10% steps up to 50% every 1s" in first
        assert "initial version: ghcr.io/stefanprodan/podinfo:6.0.1 → Initialized" in first
        # After promotion: all on the primary, and the measured traffic is that split's, not the last step's.
        assert bar(first) == (100, 50, 0, 0)
        measured = next(line for line in first.splitlines() if "measured over the " in line)
        assert "at these weights" in measured and "canary:   0.0 req/s" in measured

        kubeconfig = re.search(r"KUBECONFIG=(\S+)", first)
        assert kubeconfig, first
        async with KubeClient(kubeconfig=kubeconfig[1]) as kube:
            deployment = await kube.get(DEPLOYMENTS, "podinfo", "test")
            deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.0.3"
            await kube.replace(DEPLOYMENTS, deployment)
        # Mid-release the two sides of the bar are different characters, in proportion to the weights.
        split = await pane.wait_for(lambda s: f"{SECOND} → in progress" in s and splits(s), 60)
        shown = bar(split)
        assert shown is not None
        primary, primary_cells, canary_cells, canary = shown
        assert primary + canary == 100 and canary_cells == round(50 * canary / 100) and primary_cells > 0
        done = await pane.wait_for(lambda s: f"{SECOND} → Succeeded: promoted" in s, 60)
        assert FIRST in done  # the earlier release keeps its block and outcome

        pane.keys("C-c")
        end = await pane.wait_for(lambda s: "[exit " in s, 30)
        verdict = " ".join(end.split("[exit ")[0].split("controller metrics were served at")[1].split())
        assert "demo passed (release 1: Succeeded); latest: release 2 (ghcr.io/stefanprodan/podinfo:6.0.3) " \
               "Succeeded: promoted after" in verdict
        assert "[exit 0]" in end
    finally:
        pane.close()
