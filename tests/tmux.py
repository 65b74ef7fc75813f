"""A real terminal for tests: a command runs in a detached tmux session and the test reads what its pane shows.

tmux gives the command a pseudo-terminal of a known size, so it sees ``isatty()`` and its columns as a user's
shell would give them; ``capture-pane`` returns the screen as text (no escape codes), the way a person reads it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.paths import REPO_ROOT

AVAILABLE = shutil.which("tmux") is not None
SKIP_REASON = "tmux is not installed (apt-get install tmux)"


class Pane:
    """One tmux server (its own socket under ``tmp``) running ``argv`` in a ``width`` x ``height`` window."""

    def __init__(self, tmp: Path, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 width: int = 120, height: int = 40) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.socket = str(tmp / "tmux.sock")
        # PYTHONPATH: the code under test, also when an editable install points elsewhere.
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        environment.pop("TMUX", None)
        environment.pop("NO_COLOR", None)
        # The pane stays after the command exits, so a test can still read its last screen.
        command = shlex.join(list(argv))
        self._tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "test",
                   f"{command}; echo '[exit '$?']'; sleep 600", env=environment)

    def _tmux(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=True,
                             env=dict(env) if env is not None else None, timeout=20)
        return out.stdout

    def screen(self) -> str:
        """What the pane shows now, trailing blanks removed."""
        return "\n".join(line.rstrip() for line in self._tmux("capture-pane", "-p", "-t", "test").splitlines())

    def keys(self, *keys: str) -> None:
        """Type ``keys`` into the pane (tmux key names: ``C-c``, ``Enter``)."""
        self._tmux("send-keys", "-t", "test", *keys)

    async def wait_for(self, condition: Callable[[str], bool], timeout: float = 30.0) -> str:  # noqa: ASYNC109
        """The first screen ``condition`` holds for; AssertionError with the last screen after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            shown = await asyncio.to_thread(self.screen)
            if condition(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed what was expected; it shows:\n{shown}")
            await asyncio.sleep(0.1)

    def close(self) -> None:
        """Stop the tmux server and whatever still runs in it."""
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=20)
