"""A real Prometheus for the demo: a temporary config and TSDB, a loopback port, one scrape job every second."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from pathlib import Path

import aiohttp
import yaml

from flaggerpy.demo.processes import stop_process

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=1.0)


class PrometheusError(RuntimeError):
    """Prometheus could not be started; the message carries the tail of its log."""


def find_binary() -> str | None:
    """The ``prometheus`` executable on PATH, or None."""
    return shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, size: int = 1500) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


class RealPrometheus:
    """One Prometheus process: after :meth:`start`, ``url`` answers PromQL; :meth:`stop` always cleans up."""

    def __init__(self, binary: str, target: str, metrics_path: str, scrape_interval: str = "1s") -> None:
        self.binary = binary
        self.target = target
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Base URL of the query API."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Write the config, start the process and wait until ``/-/ready`` answers."""
        self._dir = tempfile.TemporaryDirectory(prefix="flaggerpy-demo-prometheus-")
        work = Path(self._dir.name)
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{
                "job_name": "sandbox-dataplane",
                "metrics_path": self.metrics_path,
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "static_configs": [{"targets": [self.target]}],
            }],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = _free_port()
        with (work / "prometheus.log").open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                # Its own process group: the terminal's Ctrl-C goes to the demo, which stops Prometheus in order.
                start_new_session=True,
            )
        await self._wait_ready(work / "prometheus.log")
        await self._wait_first_scrape(work / "prometheus.log")

    async def _wait_ready(self, log_path: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self._process is None or self._process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.url}/-/ready", timeout=_PROBE_TIMEOUT) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        tail = await asyncio.to_thread(_tail, log_path)
        raise PrometheusError(f"prometheus did not become ready on {self.url}: {tail.strip() or 'no output'}")

    async def _wait_first_scrape(self, log_path: Path) -> None:
        """Wait until the target has been scraped: Prometheus hands targets to its scrapers only after a few
        seconds, and a release analysed before that would find no data at all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(f"{self.url}/api/v1/query", params={"query": "up"},
                                           timeout=_PROBE_TIMEOUT) as resp:
                        answer = await resp.json()
                        if (answer.get("data") or {}).get("result"):
                            return
                await asyncio.sleep(0.2)
        tail = await asyncio.to_thread(_tail, log_path)
        raise PrometheusError(f"prometheus on {self.url} did not scrape {self.target}: {tail.strip() or 'no output'}")

    async def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and remove its files."""
        process, self._process = self._process, None
        await stop_process(process, STOP_TIMEOUT)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
