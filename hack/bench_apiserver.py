"""Micro-benchmark of the sandbox API server: CPU it spends per request and per watch event; JSON on stdout.

    python hack/bench_apiserver.py --objects 200 --requests 2000 --watchers 1,3,10

The server runs in a child process (``serve`` mode: the sandbox with the Gateway API and Flagger CRDs, no workload
simulator and no Gateway controller, so nothing but the API server reacts to the writes); this process drives it
over HTTP and reads the child's CPU time from ``/proc`` (nanoseconds, summed over its threads). Wall-clock times
are not reported: on a shared machine they measure the neighbours.

Measured, each as CPU microseconds per request in the server:

- ``put_canary_status``: PUT ``/status`` of a Canary carrying the whole object, as the controller's steps do;
- ``patch_httproute``: merge PATCH of an HTTPRoute's backend weights (a spec change: new generation);
- ``patch_deployment``: merge PATCH of a Deployment's ``spec.replicas``;
- ``get_canary`` and ``list_canaries`` (all ``--objects`` Canaries in one list);
- ``watch_<W>``: the Canary status write again with W watchers on Canaries; ``watch_fanout.cpu_us_per_event``
  is what each delivered watch event adds (the slope of the cost per write over W, from no watcher up);
- ``watch_replay``: a watch from the resourceVersion before all the writes above, per replayed event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import glob
import json
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import Api, canary, deployment, httproute
from bench_proc import usage

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
CANARIES = f"/apis/flagger.app/v1beta1/namespaces/{NAMESPACE}/canaries"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
HTTPROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes"
ALL_CANARIES = "/apis/flagger.app/v1beta1/canaries"
MERGE = "application/merge-patch+json"
_TIMEOUT = aiohttp.ClientTimeout(total=60)


def cpu_ns(pid: int) -> int:
    """CPU nanoseconds the process has run so far, from each thread's schedstat (finer than clock ticks)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(FileNotFoundError), open(path) as f:
            total += int(f.read().split()[0])
    return total


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def canary_status(step: int) -> dict[str, Any]:
    """A Progressing status as the controller writes it at one analysis step."""
    stamp = f"2026-01-01T00:{step // 60 % 60:02d}:{step % 60:02d}Z"
    return {
        "phase": "Progressing", "canaryWeight": step % 5 * 10, "iterations": 0, "failedChecks": 0,
        "lastAppliedSpec": "5f6d7c8b9a", "lastPromotedSpec": "4e5d6c7b8a", "lastTransitionTime": stamp,
        "trackedConfigs": {}, "observedGeneration": 1,
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                        "message": "New revision detected, progressing canary analysis.",
                        "lastUpdateTime": stamp, "lastTransitionTime": stamp}],
    }


class Driver:
    """Writes against the child server and measures its CPU around each batch."""

    def __init__(self, api: Api, pid: int, objects: int, concurrency: int, batches: int) -> None:
        self.api = api
        self.pid = pid
        self.names = [f"app-{i:05d}" for i in range(objects)]
        self.canaries: dict[str, dict[str, Any]] = {}
        self.concurrency = concurrency
        self.batches = batches
        self.step = 0

    async def setup(self) -> None:
        """Namespace, then a Deployment, a Canary and an HTTPRoute per name."""
        await self.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NAMESPACE}})

        async def one(name: str) -> None:
            await self.api.create(DEPLOYMENTS, deployment(name, NAMESPACE, "podinfo:1.0.0"))
            self.canaries[name] = await self.api.create(CANARIES, canary(name, NAMESPACE, 10, 10, 50))
            await self.api.create(HTTPROUTES, httproute(name, NAMESPACE))

        await self._each(self.names, one)

    async def _each(self, names: list[str], action: Callable[[str], Awaitable[None]]) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)

        async def worker() -> None:
            while not queue.empty():
                await action(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def _round(self, requests: int) -> list[str]:
        return [self.names[i % len(self.names)] for i in range(requests)]

    async def measure(self, requests: int, action: Callable[[str], Awaitable[None]]) -> float:
        """Server CPU microseconds per call of ``action``: the cheapest of ``batches`` runs of ``requests`` calls.

        Neighbours on a shared machine only ever add CPU time (cache and core contention), so the cheapest batch
        is the closest to the cost on a quiet machine.
        """
        costs = []
        for _ in range(self.batches):
            before = cpu_ns(self.pid)
            await self._each(self._round(requests), action)
            costs.append((cpu_ns(self.pid) - before) / 1000 / requests)
        return min(costs)

    async def warm(self, action: Callable[[str], Awaitable[None]]) -> None:
        """One unmeasured round over every object: caches filled, connections open."""
        await self._each(self.names, action)

    async def put_status(self, name: str) -> None:
        """PUT /status of one Canary with the object last returned (so its resourceVersion is current)."""
        self.step += 1
        body = dict(self.canaries[name], status=canary_status(self.step))
        self.canaries[name] = await self.api.request("PUT", f"{CANARIES}/{name}/status", body)

    async def patch_route(self, name: str) -> None:
        """Shift the route's weights one step."""
        self.step += 1
        weight = self.step % 5 * 10
        body = {"spec": {"rules": httproute(name, NAMESPACE, weight)["spec"]["rules"]}}
        await self._patch(f"{HTTPROUTES}/{name}", body)

    async def patch_deployment(self, name: str) -> None:
        """Scale between 1 and 2 replicas."""
        self.step += 1
        await self._patch(f"{DEPLOYMENTS}/{name}", {"spec": {"replicas": 1 + self.step % 2}})

    async def _patch(self, path: str, body: dict[str, Any]) -> None:
        url = self.api.base_url + path
        async with self.api.session.patch(url, data=json.dumps(body), headers={"Content-Type": MERGE},
                                          timeout=_TIMEOUT) as resp:
            await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"PATCH {path}: {resp.status}")

    async def get_canary(self, name: str) -> None:
        """GET one Canary."""
        await self.api.get(f"{CANARIES}/{name}")

    async def list_canaries(self, name: str) -> None:
        """LIST every Canary of the namespace."""
        await self.api.get(CANARIES)

    async def watched_writes(self, watchers: int, requests: int) -> float:
        """Server CPU per Canary status write while ``watchers`` watches of all Canaries read every event (the
        cheapest of ``batches`` runs)."""
        rv = (await self.api.get(ALL_CANARIES + "?limit=1"))["metadata"]["resourceVersion"]
        seen = [0] * watchers
        progress = asyncio.Condition()
        connected = [asyncio.Event() for _ in range(watchers)]
        tasks = [asyncio.create_task(self._watch(rv, seen, i, connected[i], progress)) for i in range(watchers)]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 30)
            costs = []
            for batch in range(1, self.batches + 1):
                before = cpu_ns(self.pid)
                await self._each(self._round(requests), self.put_status)
                # Delivery ends after the last write answers; its CPU belongs to these writes.
                async with progress:
                    await asyncio.wait_for(progress.wait_for(lambda b=batch: min(seen) >= b * requests), 60)
                costs.append((cpu_ns(self.pid) - before) / 1000 / requests)
            return min(costs)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, rv: str, seen: list[int], index: int, connected: asyncio.Event,
                     progress: asyncio.Condition) -> None:
        url = f"{self.api.base_url}{ALL_CANARIES}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
        async with self.api.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            connected.set()
            async for raw in resp.content:
                if raw.strip() and json.loads(raw).get("type") == "MODIFIED":
                    seen[index] += 1
                    async with progress:
                        progress.notify_all()

    async def replay(self, rv: str) -> tuple[float, int]:
        """Server CPU per event of one watch that starts at ``rv`` (history replay), and the events replayed."""
        url = f"{self.api.base_url}{ALL_CANARIES}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        before = cpu_ns(self.pid)
        count = 0
        async with self.api.session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            async for raw in resp.content:
                if raw.strip():
                    count += 1
        return (cpu_ns(self.pid) - before) / 1000 / max(1, count), count


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    """Start the child server, run every measurement, stop it."""
    with tempfile.TemporaryDirectory(prefix="bench-apiserver-") as workdir:
        command = [sys.executable, __file__, "serve", "--kubeconfig", str(Path(workdir) / "kubeconfig")]
        if args.cel_rules:
            command.append("--cel-rules")
        if args.watch_batch_window is not None:
            command += ["--watch-batch-window", str(args.watch_batch_window)]
        child = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, cwd=REPO,
                                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if not line:
                raise RuntimeError("the sandbox child did not start (its stderr is above)")
            ready = json.loads(line)
            async with Api(ready["url"], concurrency=args.concurrency) as api:
                driver = Driver(api, child.pid, args.objects, args.concurrency, args.batches)
                await driver.setup()
                start_rv = (await api.get(ALL_CANARIES + "?limit=1"))["metadata"]["resourceVersion"]
                ops: dict[str, Any] = {}
                for name, action in (("put_canary_status", driver.put_status),
                                     ("patch_httproute", driver.patch_route),
                                     ("patch_deployment", driver.patch_deployment),
                                     ("get_canary", driver.get_canary)):
                    await driver.warm(action)
                    ops[name] = {"cpu_us_per_request": round(await driver.measure(args.requests, action), 1)}
                lists = max(10, args.requests // args.objects)
                ops["list_canaries"] = {"cpu_us_per_request": round(
                    await driver.measure(lists, driver.list_canaries), 1), "items": args.objects}
                # Per delivered event: the slope of CPU per write over the watcher count, fitted through the
                # write without watchers, so one noisy run does not decide it.
                points = [(0, ops["put_canary_status"]["cpu_us_per_request"])]
                for watchers in args.watchers:
                    per_write = await driver.watched_writes(watchers, args.requests)
                    ops[f"watch_{watchers}"] = {"cpu_us_per_write": round(per_write, 1)}
                    points.append((watchers, per_write))
                ops["watch_fanout"] = {"cpu_us_per_event": round(slope(points), 1)}
                per_event, replayed = await driver.replay(start_rv)
                ops["watch_replay"] = {"cpu_us_per_event": round(per_event, 1), "events": replayed}
                used = usage(child.pid)
            return {"objects": args.objects, "requests": args.requests, "concurrency": args.concurrency,
                    "cel_rules": args.cel_rules, "watch_batch_window_s": args.watch_batch_window, "ops": ops,
                    "server_rss_mib": round(used.rss_mib, 1) if used else None}
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            await child.wait()


async def serve(args: argparse.Namespace) -> None:
    """The child: the sandbox with the CRDs and the benchmark namespace's Gateway namespace, until SIGTERM."""
    from bench_sandbox import GATEWAY_CRDS, crd_documents

    from flaggerpy.log import configure as configure_logging
    from flaggerpy.sandbox import Sandbox, ServerSettings

    configure_logging("warning")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Only the flags given reach ServerSettings, so this bench also measures trees older than its options.
    settings = ServerSettings(**({} if args.watch_batch_window is None
                                 else {"watch_batch_window": args.watch_batch_window}))
    async with Sandbox(kubeconfig_path=args.kubeconfig, dataplane=False, workloads=False,
                       history_size=args.history, cel_rules=args.cel_rules, settings=settings) as sandbox:
        for doc in crd_documents(GATEWAY_CRDS):
            await sandbox.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        sys.stdout.write(json.dumps({"url": sandbox.url, "pid": os.getpid()}) + "\n")
        sys.stdout.flush()
        await stop.wait()


def main() -> int:
    """Parse flags; drive (default) or serve."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["drive", "serve"], default="drive", help=argparse.SUPPRESS)
    parser.add_argument("--objects", type=int, default=200, help="Deployments, Canaries and routes (default 200)")
    parser.add_argument("--requests", type=int, default=400, help="requests per batch (default 400)")
    parser.add_argument("--batches", type=int, default=5,
                        help="runs of --requests per measurement; the cheapest counts (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--watchers", default="1,3,10", help="watcher counts for the fan-out runs (default 1,3,10)")
    parser.add_argument("--cel-rules", action="store_true", help="evaluate the CRDs' CEL rules")
    parser.add_argument("--watch-batch-window", type=float, default=None,
                        help="the server's watch_batch_window in seconds (default: the sandbox's own)")
    parser.add_argument("--history", type=int, default=500_000, help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args))
        return 0
    try:
        args.watchers = [int(w) for w in args.watchers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--watchers: expected comma-separated integers, got {args.watchers!r}")
    if min(args.objects, args.requests, args.concurrency, args.batches, *args.watchers) < 1:
        parser.error("--objects, --requests, --batches, --concurrency and --watchers must be positive")
    json.dump(asyncio.run(drive(args)), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
