"""Run shell commands as asyncio subprocesses: bounded output, a timeout, and a kill that reaches children.

Each command runs in its own session (process group), so stopping ``sh -c 'hey ...'`` also stops ``hey``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from flaggerpy.log import get_logger

_log = get_logger("flaggerpy.loadtester.commands")
_READ_CHUNK = 16 * 1024


@dataclass(frozen=True)
class CommandResult:
    """How a command ended. ``exit_code`` is None when it never started or was stopped."""

    exit_code: int | None
    output: str
    truncated: bool = False
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command ran to completion with exit code 0."""
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        """One line saying how the command ended, for logs and HTTP answers."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return "timed out"
        return f"exit code {self.exit_code}"


class _TailBuffer:
    """Keeps the last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        self._data += chunk
        overflow = len(self._data) - self._limit
        if overflow > 0:
            del self._data[:overflow]
            self.truncated = True

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The group may already be gone; that is the outcome we want anyway.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the command's process group, then SIGKILL it if it is still there after ``grace`` seconds."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
    # Children that ignored SIGTERM must not outlive the command either.
    _signal_group(process.pid, signal.SIGKILL)


async def run_command(argv: Sequence[str], *, time_limit: float, max_output: int, kill_grace: float) -> CommandResult:
    """Run ``argv`` with stdout and stderr combined; never raises for a failing or missing command.

    When the caller is cancelled (a client hung up, the server stops) the command is killed before the
    cancellation propagates.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(exit_code=None, output="", error=f"cannot start {argv[0]!r}: {exc.strerror or exc}")

    buffer = _TailBuffer(max_output)

    async def consume() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(_READ_CHUNK):
            buffer.write(chunk)
        await process.wait()

    try:
        async with asyncio.timeout(time_limit):
            await consume()
    except TimeoutError:
        _log.warning("command exceeded its time limit, stopping it", program=argv[0], limit_seconds=time_limit)
        await _stop(process, kill_grace)
        return CommandResult(exit_code=None, output=buffer.text(), truncated=buffer.truncated, timed_out=True)
    except asyncio.CancelledError:
        await _stop(process, kill_grace)
        raise
    return CommandResult(exit_code=process.returncode, output=buffer.text(), truncated=buffer.truncated)
