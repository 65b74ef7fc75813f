"""Benchmark the dashboard at N canaries (default 1,000); JSON on stdout, progress on stderr.

    python hack/bench_dashboard.py --canaries 1000 --loads 5 --updates 20 --streams 200

The sandbox runs in its own process (``flaggerpy sandbox``) with N Canaries spread over namespaces, each with a
status and two Events; the dashboard runs in this process with its default settings; the browser is Debian's
Chromium driven by Playwright.

- first paint: a fresh page load of the list → the first 50 rows on screen (the page's ``list-rendered`` User
  Timing mark, relative to navigation start), with First Contentful Paint and the snapshot's size beside it;
- update latency: the status of the first canary on screen is patched (a new weight) → the browser's
  MutationObserver sees the new weight in its row; taken from wall clocks of one machine;
- fan-out: ``--streams`` extra raw SSE clients are open during the updates; each update's time until every one of
  them received it, and the API requests the dashboard made meanwhile (expected: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from flaggerpy import log as logconf
from flaggerpy.apis.crds import build_crds
from flaggerpy.dashboard.server import DashboardSettings, serve
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient

CHROMIUM = os.environ.get("FLAGGERPY_CHROMIUM", "/usr/bin/chromium")
NAMESPACES = 20
PHASES = ("Initialized", "Progressing", "Succeeded", "Failed", "WaitingPromotion")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "p95_ms": pct(values, 0.95),
            "max_ms": round(max(values), 1), "n": len(values)}


@contextlib.asynccontextmanager
async def sandbox_process(workdir: Path) -> AsyncIterator[Path]:
    """``flaggerpy sandbox`` in its own process; yields its kubeconfig."""
    kubeconfig = workdir / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flaggerpy.cli", "sandbox", "--kubeconfig", str(kubeconfig), "--no-dataplane",
        "--no-pods", "--no-cel", "--log-level", "error",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(Exception):
                    async with KubeClient(kubeconfig=str(kubeconfig)) as kube:
                        await kube.list(res.NAMESPACES)
                        break
                await asyncio.sleep(0.1)
        yield kubeconfig
    finally:
        proc.terminate()
        await proc.wait()


def canary_doc(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": name, "namespace": namespace},
            "spec": {"provider": "gatewayapi:v1", "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                 "name": name},
                     "service": {"port": 9898, "gatewayRefs": [{"name": "gw", "namespace": "gateway"}]},
                     "analysis": {"interval": "30s", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                                  "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]}}}


def event_doc(namespace: str, name: str, n: int, message: str) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.{n}", "namespace": namespace},
            "involvedObject": {"kind": "Canary", "apiVersion": "flagger.app/v1beta1", "namespace": namespace,
                               "name": name},
            "reason": "Synced", "message": message, "type": "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": "flagger"}}


async def populate(kube: KubeClient, count: int) -> None:
    for crd in build_crds().values():
        await kube.create(res.CRDS, crd)
    await asyncio.sleep(0.5)
    for i in range(NAMESPACES):
        await kube.create(res.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": f"team-{i:02d}"}})
    keys = [(f"team-{i % NAMESPACES:02d}", f"app-{i:04d}") for i in range(count)]
    sem = asyncio.Semaphore(16)

    async def one(i: int, namespace: str, name: str) -> None:
        async with sem:
            await kube.create(res.CANARIES, canary_doc(namespace, name))
            phase = PHASES[i % len(PHASES)]
            await kube.patch_status(res.CANARIES, name, namespace, {"status": {
                "phase": phase, "canaryWeight": 10 * (i % 6), "failedChecks": i % 3, "iterations": 0,
                "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}})
            await kube.create(res.EVENTS, event_doc(namespace, name, 1, f"New revision detected! Scaling up {name}"))
            await kube.create(res.EVENTS, event_doc(namespace, name, 2, f"Advance {name}.{namespace} canary weight 10"))

    await asyncio.gather(*(one(i, ns, n) for i, (ns, n) in enumerate(keys)))


def reads(counters: dict[str, dict[str, int]]) -> int:
    return sum(n for verbs in counters.values() for verb, n in verbs.items() if verb in ("get", "list", "watch"))


async def counters(http: aiohttp.ClientSession, server: str) -> dict[str, dict[str, int]]:
    async with http.get(f"{server}/sandbox/counters") as response:
        return await response.json()  # type: ignore[no-any-return]


class FanOut:
    """What the raw SSE clients received: for each bench weight, when the last of them got it."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.connected = 0
        self.all_connected = asyncio.Event()
        self._counts: dict[int, int] = {}
        self.done: dict[int, float] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def expect(self, weight: int) -> asyncio.Event:
        return self.complete.setdefault(weight, asyncio.Event())

    def received(self, weight: int) -> None:
        self._counts[weight] = self._counts.get(weight, 0) + 1
        if self._counts[weight] == self.clients:
            self.done[weight] = time.time()
            self.expect(weight).set()

    async def client(self, http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            self.connected += 1
            if self.connected == self.clients:
                self.all_connected.set()
            async for raw in response.content:
                line = raw.decode()
                if line.startswith("data: ") and '"upsert"' in line:
                    for row in json.loads(line[6:])["upsert"]:
                        weight = row.get("weight")
                        if isinstance(weight, int) and weight >= 1000:
                            self.received(weight)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    async with sandbox_process(workdir) as kubeconfig, KubeClient(kubeconfig=str(kubeconfig)) as kube:
        server = kube.api_client.configuration.host
        log(f"sandbox at {server}; creating {args.canaries} canaries")
        await populate(kube, args.canaries)
        started = time.perf_counter()
        async with serve(DashboardSettings(kubeconfig=str(kubeconfig), port=0)) as dash, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, async_playwright() as pw:
            sync_s = time.perf_counter() - started
            snapshot_bytes = len(dash.hub.snapshot())
            log(f"dashboard at {dash.url}, synced in {sync_s:.2f}s; snapshot {snapshot_bytes} bytes")
            launch = ["--disable-dev-shm-usage", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=launch)
            paints: list[float] = []
            fcps: list[float] = []
            for _ in range(args.loads):
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(dash.url + "/")
                await page.locator("#canaries tbody tr").nth(49).wait_for(timeout=30_000)
                marks = await page.evaluate("""() => ({
                    rendered: performance.getEntriesByName('list-rendered')[0]?.startTime,
                    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime})""")
                paints.append(marks["rendered"])
                if marks["fcp"] is not None:
                    fcps.append(marks["fcp"])
                await page.close()
            log(f"first paint of the list: median {statistics.median(paints):.0f} ms")

            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(dash.url + "/")
            first = page.locator("#canaries tbody tr").first
            await first.wait_for(timeout=30_000)
            if args.screenshot:
                await page.screenshot(path=args.screenshot, full_page=True)
            key = await first.get_attribute("data-key")
            namespace, name = key.split("/")
            await page.evaluate("""(key) => {
                window.__seen = {};
                new MutationObserver(() => {
                  const row = document.querySelector(`#canaries tbody tr[data-key="${key}"]`);
                  const text = row && row.children[3].textContent;
                  if (text && !(text in window.__seen)) window.__seen[text] = Date.now();
                }).observe(document.querySelector('#canaries tbody'), {subtree: true, childList: true,
                                                                       characterData: true});
            }""", key)
            fan = FanOut(args.streams)
            streams = [asyncio.create_task(fan.client(http, f"{dash.url}/api/stream")) for _ in range(args.streams)]
            if args.streams:
                await asyncio.wait_for(fan.all_connected.wait(), 60)
            before = reads(await counters(http, server))
            latencies: list[float] = []
            fanout: list[float] = []
            for i in range(args.updates):
                weight = 1000 + i
                delivered = fan.expect(weight)
                sent = time.time()
                await kube.patch_status(res.CANARIES, name, namespace, {"status": {"canaryWeight": weight}})
                deadline = time.monotonic() + 10
                while True:
                    shown = await page.evaluate("(w) => window.__seen[w + '%']", weight)
                    if shown is not None:
                        latencies.append(shown - sent * 1000)
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"weight {weight} never shown")
                    await asyncio.sleep(0.005)
                if args.streams:
                    await asyncio.wait_for(delivered.wait(), 10)
                    fanout.append((fan.done[weight] - sent) * 1000)
                # Let the page settle so one update's rendering does not delay the next one's measurement.
                await asyncio.sleep(0.2)
            after = reads(await counters(http, server))
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await browser.close()
            subscribers = dash.hub.subscribers
        return {
            "canaries": args.canaries,
            "namespaces": NAMESPACES,
            "dashboard_sync_s": round(sync_s, 2),
            "snapshot_bytes": snapshot_bytes,
            "first_paint_of_list": summary(paints),
            "first_contentful_paint": summary(fcps) if fcps else None,
            "update_latency_status_to_page": summary(latencies),
            "update_latency_to_all_raw_streams": summary(fanout) if fanout else None,
            "raw_streams_open": args.streams,
            "subscribers_at_end": subscribers,
            "api_reads_during_updates": after - before,
            "flush_interval_s": DashboardSettings().hub.flush_interval,
            # The machine is shared: its load says how much of each figure is waiting for a CPU.
            "machine": {"cpus": os.cpu_count(), "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5, help="page loads measured for first paint")
    parser.add_argument("--updates", type=int, default=20, help="status changes measured")
    parser.add_argument("--streams", type=int, default=200, help="extra SSE clients open during the updates")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--screenshot", help="a PNG of the list as measured")
    options = parser.parse_args()
    logconf.configure("warning")  # stdout carries only the JSON
    text = json.dumps(asyncio.run(main(options)), indent=2)
    print(text)
    if options.out:
        Path(options.out).write_text(text + "\n")
