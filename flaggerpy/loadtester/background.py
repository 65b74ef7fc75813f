"""Background commands (``metadata.type: cmd``): started, de-duplicated while running, stopped on shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from flaggerpy.loadtester.commands import run_command
from flaggerpy.loadtester.config import LoadtesterConfig
from flaggerpy.log import get_logger

_log = get_logger("flaggerpy.loadtester.background")


@dataclass(frozen=True)
class TaskKey:
    """A running command is identified by its canary and its exact text, as in flagger-loadtester."""

    canary: str
    command: str


class BackgroundRunner:
    """Runs each distinct (canary, command) at most once at a time, via ``sh -c``.

    Flagger calls a rollout webhook at every analysis interval, so a one-minute ``hey`` asked for every
    30 seconds must not pile up: a submit while the same command still runs is a no-op.
    """

    def __init__(self, config: LoadtesterConfig) -> None:
        self._config = config
        self._running: dict[TaskKey, asyncio.Task[None]] = {}
        self.started_total = 0

    def running(self) -> list[TaskKey]:
        """The commands running now."""
        return list(self._running)

    def submit(self, canary: str, command: str, log_output: bool) -> bool:
        """Start ``command`` unless the same one runs already for ``canary``; True when it was started."""
        key = TaskKey(canary, command)
        if key in self._running:
            _log.info("command skipped, already running", canary=canary, command=command)
            return False
        self.started_total += 1
        task = asyncio.create_task(self._run(key, log_output), name=f"loadtester:{canary}")
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))
        return True

    async def _run(self, key: TaskKey, log_output: bool) -> None:
        _log.info("command starting", canary=key.canary, command=key.command)
        result = await run_command(
            ["sh", "-c", key.command],
            time_limit=self._config.timeout,
            max_output=self._config.max_output_bytes,
            kill_grace=self._config.kill_grace,
        )
        if result.ok:
            if log_output:
                _log.info("command output", canary=key.canary, output=result.output)
            _log.info("command finished", canary=key.canary, command=key.command)
        else:
            _log.error(
                "command failed",
                canary=key.canary,
                command=key.command,
                reason=result.describe(),
                output=result.output,
            )

    async def wait_idle(self) -> None:
        """Wait until every command running now has ended (tests and graceful shutdown)."""
        tasks = list(self._running.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop every running command (each is killed with its children) and wait until they are gone."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
