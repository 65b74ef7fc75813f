"""A real Prometheus server for end-to-end tests: started on a free loopback port with a temporary config and
TSDB, scraping the targets a test gives it every second, stopped afterwards.

Reuse it from any e2e test::

    from tests.e2e.prometheus_fixture import PrometheusServer, ScrapeTarget, requires_prometheus

    @requires_prometheus
    async def test_x(tmp_path):
        async with PrometheusServer([ScrapeTarget("127.0.0.1:8080", "/sandbox/dataplane/metrics")], tmp_path) as prom:
            value = await prom.wait_for_value('sum(up)')

or take the ``prometheus_factory`` fixture (import it into the test module or a conftest).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
import yaml

from flaggerpy.analysis.builtin import Flavour
from tests.ports import free_port
from tests.tools import PROMETHEUS_MISSING

SANDBOX_FLAVOURS = [flavour for flavour in Flavour if flavour is not Flavour.TRAEFIK]
"""The builtin flavours whose metric names the sandbox's Gateway exports. Traefik's are measured against the real
Traefik's own /metrics (tests/e2e/test_demo_traefik.py)."""

PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def prometheus_available() -> bool:
    """Whether a Prometheus binary can be run here."""
    return os.access(PROMETHEUS_BINARY, os.X_OK)


requires_prometheus = pytest.mark.skipif(
    not prometheus_available(),
    reason=PROMETHEUS_MISSING,
)


@dataclass(frozen=True)
class ScrapeTarget:
    """Something Prometheus scrapes: ``address`` is host:port."""

    address: str
    metrics_path: str = "/metrics"
    job: str = "flaggerpy-test"


class PrometheusServer:
    """One Prometheus process; an async context manager."""

    def __init__(self, targets: Sequence[ScrapeTarget], workdir: Path, *, scrape_interval: str = "1s") -> None:
        self.targets = list(targets)
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's own output goes (read it when a test fails)."""
        return self.workdir / "prometheus.log"

    def _config(self) -> dict[str, Any]:
        jobs: dict[tuple[str, str], list[str]] = {}
        for target in self.targets:
            jobs.setdefault((target.job, target.metrics_path), []).append(target.address)
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": job if len(jobs) == 1 else f"{job}-{index}",
                    "metrics_path": path,
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": addresses}],
                }
                for index, ((job, path), addresses) in enumerate(jobs.items())
            ],
        }

    async def start(self) -> None:
        """Write the config, start the process and wait until it answers /-/ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        self.port = free_port()
        log = self.log_path.open("wb")
        try:
            self._process = await asyncio.create_subprocess_exec(
                PROMETHEUS_BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            log.close()
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    break
                try:
                    async with session.get(f"{self.url}/-/ready", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        output = self.log_path.read_text(errors="replace")[-2000:]
        await self.stop()
        raise RuntimeError(f"prometheus did not become ready on {self.url}:\n{output}")

    async def stop(self) -> None:
        """Terminate the process (kill it if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def query(self, promql: str) -> dict[str, Any]:
        """The raw answer of an instant query."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=aiohttp.ClientTimeout(total=5)
            ) as resp,
        ):
            answer: dict[str, Any] = await resp.json()
            return answer

    async def wait_for_value(self, promql: str, timeout: float = 30.0) -> float:  # noqa: ASYNC109
        """Poll an instant query until it answers one finite number (scrapes take a few seconds to add up)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = await self.query(promql)
            result = last.get("data", {}).get("result")
            sample = result[0].get("value") if isinstance(result, list) and len(result) == 1 else None
            if sample is not None and not math.isnan(float(sample[1])):
                return float(sample[1])
            await asyncio.sleep(0.25)
        raise TimeoutError(f"no value for {promql!r} within {timeout}s; last answer: {last}")

    async def __aenter__(self) -> PrometheusServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@pytest.fixture
async def prometheus_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Sequence[ScrapeTarget]], Awaitable[PrometheusServer]]]:
    """Start Prometheus servers scraping the given targets; all are stopped at the end of the test."""
    if not prometheus_available():
        pytest.skip(PROMETHEUS_MISSING)
    servers: list[PrometheusServer] = []

    async def start(targets: Sequence[ScrapeTarget]) -> PrometheusServer:
        server = PrometheusServer(targets, tmp_path / f"prometheus-{len(servers)}")
        servers.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()
