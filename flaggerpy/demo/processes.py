"""Stopping the helper processes the demo starts (Prometheus, Traefik)."""

from __future__ import annotations

import asyncio


async def stop_process(process: asyncio.subprocess.Process | None, grace: float) -> None:
    """Terminate ``process`` and wait for it; kill it when it lingers past ``grace`` seconds."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
