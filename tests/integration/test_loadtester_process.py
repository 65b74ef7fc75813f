"""``flaggerpy loadtester`` as a process: it serves, and SIGTERM stops it cleanly with its commands."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from tests.ports import free_port

_LAUNCH = (
    "import argparse, sys\n"
    "from flaggerpy.loadtester import cli\n"
    "parser = argparse.ArgumentParser()\n"
    "cli.configure(parser)\n"
    "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
)


async def test_serves_until_sigterm() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LAUNCH,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout",
        "1m",
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the load tester never answered /healthz")
            payload = {"name": "podinfo", "namespace": "test", "metadata": {"cmd": "sleep 60"}}
            async with session.post(f"http://127.0.0.1:{port}/", json=payload) as resp:
                assert resp.status == 202
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_bad_flag_exits_2_with_the_flag_named() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LAUNCH, "--timeout", "forever", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"--timeout: 'forever' is not a duration" in err
