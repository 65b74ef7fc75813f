"""The demo's controller serves the telemetry ``flaggerpy run`` serves, and it agrees with the Canary's status."""

from __future__ import annotations

import asyncio
import io
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.demo import manifests
from flaggerpy.demo.errors import DemoError
from flaggerpy.demo.session import Demo, Options
from flaggerpy.demo.view import DemoState, PlainReporter

# Flagger's encoding of flagger_canary_status.
STATUS_VALUES = {"Progressing": 0.0, "Succeeded": 1.0, "Failed": 2.0}
RELEASE_TIMEOUT = 60.0


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics by (name, sorted labels)."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def exported(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple[float | None, ...]:
    """(flagger_canary_status, canary weight, primary weight) of the demo canary; None where not exported."""
    ns = ("namespace", manifests.NAMESPACE)
    return (samples.get(("flagger_canary_status", (("name", manifests.APP), ns))),
            samples.get(("flagger_canary_weight", (ns, ("workload", manifests.APP)))),
            samples.get(("flagger_canary_weight", (ns, ("workload", f"{manifests.APP}-primary")))))


async def test_metrics_follow_the_canary_status_through_a_release() -> None:
    out = io.StringIO()
    reporter = PlainReporter(DemoState("telemetry", 3), out)
    demo = Demo(Options(prometheus="sandbox", timeout=RELEASE_TIMEOUT, keep=True), reporter)
    run = asyncio.create_task(demo.run())
    # (phase, canary weight) of every status the telemetry was seen to agree with.
    agreed: set[tuple[str, int]] = set()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                asyncio.timeout(RELEASE_TIMEOUT):
            while ("Succeeded", 0) not in agreed:
                assert not run.done(), out.getvalue()
                status, url = demo.canary_status, reporter.state.telemetry_url
                phase, weight = str(status.get("phase") or ""), int(status.get("canaryWeight") or 0)
                # A step may land between reading the status and scraping: only agreement is recorded.
                if url and phase in STATUS_VALUES and \
                        exported(await scrape(session, url)) == (STATUS_VALUES[phase], weight, 100 - weight):
                    agreed.add((phase, weight))
                await asyncio.sleep(0.05)
            async with session.get(f"{url}/healthz") as healthz, session.get(f"{url}/readyz") as readyz:
                assert (healthz.status, await healthz.text()) == (200, "ok")
                assert (readyz.status, await readyz.text()) == (200, "ready (leader)")
            samples = await scrape(session, url)
    finally:
        run.cancel()
        outcome = await asyncio.gather(run, return_exceptions=True)
    assert {("Progressing", w) for w in (10, 20, 30, 40, 50)} <= agreed
    assert not isinstance(outcome[0], BaseException) and outcome[0].ok, out.getvalue()
    assert samples[("flagger_canary_total", (("namespace", manifests.NAMESPACE),))] == 1
    assert f"controller metrics at {url}/metrics" in out.getvalue()


async def test_a_taken_metrics_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = Demo(Options(prometheus="sandbox", metrics_port=port, timeout=RELEASE_TIMEOUT),
                    PlainReporter(DemoState("taken port", 3), io.StringIO()))
        with pytest.raises(DemoError, match=f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}"):
            await demo.run()
