"""Micro-benchmark of the kube layer's client side: CPU per API request and per watch event.

Three processes, so each figure is one process's own CPU time (``time.process_time``), not a latency:

- the sandbox API server (``hack/bench_sandbox.py``);
- this process, which sends requests through :class:`~flaggerpy.kube.api.KubeClient` (GET and PUT /status of a
  ~4 KB Canary, merge PATCH of an HTTPRoute, GET of a Deployment), and then writes the objects whose watch events
  the third process receives;
- a watcher (this script with ``--watcher``), running one :class:`~flaggerpy.kube.informer.Informer` per resource
  (Canary, Deployment, HTTPRoute) whose handlers do what a standby controller's do: put the key into a WorkQueue
  that no worker drains.

Watch figures are taken at two store sizes (``--objects 1000,5000``): ADDED events while the objects are created,
MODIFIED events while each is changed once. The sandbox's own writers (the workload simulator, the Gateway that
accepts routes) add MODIFIED events of their own; every event the watcher receives is counted.

      python3 hack/bench_kube.py --objects 1000 --requests 500 > /tmp/kube.json

Figures are CPU microseconds per request or per event; on a shared machine repeat a run and compare minimums.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cluster import httproute  # noqa: E402

from flaggerpy.kube import resources as res  # noqa: E402
from flaggerpy.kube.api import KubeClient, Obj  # noqa: E402
from flaggerpy.kube.informer import Informer  # noqa: E402
from flaggerpy.kube.settings import ClientSettings  # noqa: E402
from flaggerpy.kube.workqueue import WorkQueue  # noqa: E402
from flaggerpy.log import configure as configure_logging  # noqa: E402

NAMESPACE = "bench"
WATCHED = {"canaries": res.CANARIES, "deployments": res.DEPLOYMENTS, "httproutes": res.HTTPROUTES_V1}
CONCURRENCY = 16


def deployment(name: str, image: str = "ghcr.io/stefanprodan/podinfo:6.0.0") -> Obj:
    """A podinfo-like Deployment (two containers' worth of fields, like a real one)."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name, "team": "bench"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {"containers": [{
                    "name": "podinfod", "image": image, "ports": [{"name": "http", "containerPort": 9898}],
                    "env": [{"name": "PODINFO_UI_COLOR", "value": "#34577c"}],
                    "resources": {"limits": {"cpu": "2", "memory": "512Mi"}, "requests": {"cpu": "100m"}},
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9898}, "periodSeconds": 5},
                }]},
            },
        },
    }


def canary(name: str) -> Obj:
    """A Gateway API Canary with metrics and webhooks; with :func:`canary_status` about 4 KB of JSON."""
    return {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {
                "port": 9898, "targetPort": 9898, "hosts": [f"{name}.example.com"],
                "gatewayRefs": [{"name": "public-gateway", "namespace": "gateway"}],
            },
            "analysis": {
                "interval": "30s", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "metrics": [
                    {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
                    {"name": "request-duration", "interval": "1m", "thresholdRange": {"max": 500}},
                ],
                "webhooks": [
                    {"name": "acceptance-test", "type": "pre-rollout", "url": "http://loadtester.test/",
                     "timeout": "30s", "metadata": {"type": "bash", "cmd": f"curl -s http://{name}-canary:9898/"}},
                    {"name": "load-test", "type": "rollout", "url": "http://loadtester.test/",
                     "metadata": {"cmd": f"hey -z 1m -q 10 -c 2 http://{name}.example.com/"}},
                ],
            },
        },
    }


def canary_status(weight: int) -> Obj:
    """A mid-analysis status with conditions and a metric history."""
    now = "2026-11-22T04:00:00Z"
    return {
        "phase": "Progressing", "canaryWeight": weight, "failedChecks": 0, "iterations": 0,
        "lastAppliedSpec": "5d8f7c6b9", "lastPromotedSpec": "7c9f8d6a5", "lastTransitionTime": now,
        "observedGeneration": 1,
        "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                        "message": "New revision detected, progressing canary analysis.",
                        "lastUpdateTime": now, "lastTransitionTime": now, "observedGeneration": 1}],
        "metricHistory": [
            {"iteration": i, "weight": 10 * (i // 2 + 1), "name": metric, "value": 99.5, "passed": True, "time": now}
            for i in range(8) for metric in ("request-success-rate", "request-duration")
        ],
    }


def weights_patch(weight: int) -> Obj:
    """The merge patch a weight step sends (rules are replaced whole by a merge patch)."""
    return {"spec": {"rules": httproute("x", NAMESPACE, weight)["spec"]["rules"]}}


# -- watcher process -------------------------------------------------------------------------------------------


async def watcher(kubeconfig: str) -> None:
    """Run the informers; answer each line on stdin with this process's CPU time and event counts."""
    counts = dict.fromkeys(WATCHED, 0)
    queue: WorkQueue[str] = WorkQueue(name="standby")

    def handler_for(name: str) -> Callable[..., None]:
        def handler(*objs: Obj) -> None:
            counts[name] += 1
            meta = objs[-1]["metadata"]
            queue.add(f"{meta['namespace']}/{meta['name']}")

        return handler

    async with KubeClient(kubeconfig) as kube:
        informers = [Informer(kube, resource, NAMESPACE) for resource in WATCHED.values()]
        for name, informer in zip(WATCHED, informers, strict=True):
            handler = handler_for(name)
            informer.add_handlers(handler, handler, handler)
        for informer in informers:
            informer.start()
        await asyncio.gather(*(informer.wait_for_sync() for informer in informers))
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        _answer(counts)
        while await reader.readline():
            _answer(counts)
        for informer in informers:
            await informer.stop()


def _answer(counts: dict[str, int]) -> None:
    sys.stdout.write(json.dumps({"cpu": time.process_time(), "events": counts}) + "\n")
    sys.stdout.flush()


def _env(root: Path = REPO) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


class Watcher:
    """The orchestrator's handle on the watcher process."""

    def __init__(self, kubeconfig: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--watcher", "--kubeconfig", kubeconfig],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=_env(),
        )

    def sample(self) -> dict[str, Any]:
        """The watcher's CPU seconds so far and events received per resource."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def first(self) -> dict[str, Any]:
        """The sample the watcher sends once its caches are synced."""
        assert self.proc.stdout is not None
        return dict(json.loads(self.proc.stdout.readline()))

    async def settle(self, quiet: float = 1.0) -> dict[str, Any]:
        """Sample until no event arrived for ``quiet`` seconds (the sandbox's own writers have caught up)."""
        last = self.sample()
        while True:
            await asyncio.sleep(quiet)
            now = self.sample()
            if now["events"] == last["events"]:
                return now
            last = now

    def close(self) -> None:
        """End the watcher."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- orchestrator ----------------------------------------------------------------------------------------------


async def _bounded(calls: Iterable[Callable[[], Awaitable[Any]]], concurrency: int = CONCURRENCY) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


async def _timed(calls: list[Callable[[], Awaitable[Any]]]) -> float:
    """CPU microseconds of this process per call, calls made one after another."""
    start = time.process_time()
    for call in calls:
        await call()
    return round((time.process_time() - start) / len(calls) * 1e6, 1)


async def bench_requests(kube: KubeClient, n: int) -> dict[str, float]:
    """CPU per request of each verb, on objects made for the purpose."""
    name = "req"
    await kube.create(res.DEPLOYMENTS, deployment(name))
    created = await kube.create(res.CANARIES, canary(name))
    await kube.create(res.HTTPROUTES_V1, httproute(name, NAMESPACE))
    created["status"] = canary_status(10)
    current = [await kube.replace_status(res.CANARIES, created)]

    async def put_status() -> None:
        obj = current[0]
        obj["status"]["canaryWeight"] = 60 - obj["status"]["canaryWeight"]
        current[0] = await kube.replace_status(res.CANARIES, obj)

    step = iter(range(10**9))
    out = {
        "get_canary": await _timed([lambda: kube.get(res.CANARIES, name, NAMESPACE)] * n),
        "get_deployment": await _timed([lambda: kube.get(res.DEPLOYMENTS, name, NAMESPACE)] * n),
        "put_canary_status": await _timed([put_status] * n),
        "patch_httproute": await _timed(
            [lambda: kube.patch(res.HTTPROUTES_V1, name, NAMESPACE, weights_patch(next(step) % 50))] * n
        ),
    }
    size = len(json.dumps(current[0]))
    return {**out, "canary_bytes": size}


def _per_event(before: dict[str, Any], after: dict[str, Any], resource: str) -> dict[str, float]:
    events = after["events"][resource] - before["events"][resource]
    cpu = after["cpu"] - before["cpu"]
    return {"events": events, "cpu_us_per_event": round(cpu / max(1, events) * 1e6, 1)}


async def bench_watch(kube: KubeClient, watcher: Watcher, start: int, stop: int) -> dict[str, Any]:
    """ADDED events for objects ``start..stop`` of each kind, then one MODIFIED event for every object so far."""
    names = [f"app-{i:05d}" for i in range(start, stop)]
    every = [f"app-{i:05d}" for i in range(stop)]
    out: dict[str, Any] = {}
    makers: dict[str, Callable[[str], Obj]] = {
        "deployments": deployment, "canaries": canary, "httproutes": lambda n: httproute(n, NAMESPACE),
    }
    for resource, make in makers.items():
        handle = WATCHED[resource]
        before = await watcher.settle()
        cpu = time.process_time()
        await _bounded([functools.partial(kube.create, handle, make(n)) for n in names])
        create_us = (time.process_time() - cpu) / len(names) * 1e6
        after = await watcher.settle()
        out[f"{resource}_added"] = {**_per_event(before, after, resource), "client_us_per_create": round(create_us, 1)}
    modify: dict[str, Callable[[str], Awaitable[Any]]] = {
        "deployments": lambda n: kube.patch(res.DEPLOYMENTS, n, NAMESPACE,
                                            {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}),
        "canaries": lambda n: kube.patch_status(res.CANARIES, n, NAMESPACE, {"status": canary_status(10)}),
        "httproutes": lambda n: kube.patch(res.HTTPROUTES_V1, n, NAMESPACE, weights_patch(10)),
    }
    for resource, change in modify.items():
        before = await watcher.settle()
        await _bounded([functools.partial(change, n) for n in every])
        after = await watcher.settle()
        out[f"{resource}_modified"] = _per_event(before, after, resource)
    return out


async def orchestrate(args: argparse.Namespace, kubeconfig: str, watcher: Watcher) -> dict[str, Any]:
    """Run every phase against the running sandbox and watcher; return the figures."""
    result: dict[str, Any] = {"pid": os.getpid()}
    # The client rate limit off: the figures are CPU per request, and a sequential loop at 100 requests a second
    # would add a sleep and wake-up to each (150-250 us of CPU), which a controller under its limit never pays.
    async with KubeClient(kubeconfig, settings=ClientSettings(qps=-1)) as kube:
        watcher.first()
        result["requests_cpu_us"] = await bench_requests(kube, args.requests)
        print(json.dumps(result["requests_cpu_us"]), file=sys.stderr)
        done = 0
        for size in args.objects:
            result[f"watch_{size}"] = await bench_watch(kube, watcher, done, size)
            print(json.dumps(result[f"watch_{size}"]), file=sys.stderr)
            done = size
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the sandbox and the watcher, run the phases, stop both."""
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        root = args.sandbox_root
        sandbox = subprocess.Popen(
            [sys.executable, str(root / "hack" / "bench_sandbox.py"), "--kubeconfig", kubeconfig,
             "--namespace", NAMESPACE], stdout=subprocess.PIPE, text=True, cwd=root, env=_env(root))
        watcher: Watcher | None = None
        try:
            assert sandbox.stdout is not None
            json.loads(sandbox.stdout.readline())
            watcher = Watcher(kubeconfig)
            return asyncio.run(orchestrate(args, kubeconfig, watcher))
        finally:
            if watcher is not None:
                watcher.close()
            sandbox.terminate()
            sandbox.wait(timeout=30)


def main() -> int:
    """Parse flags; run the orchestrator (or, with --watcher, the watcher process)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", default="1000,5000", help="store sizes for the watch figures (ascending)")
    parser.add_argument("--requests", type=int, default=500, help="requests per verb for the request figures")
    parser.add_argument("--sandbox-root", type=Path, default=REPO,
                        help="checkout whose sandbox serves the benchmark, to hold the server side constant while "
                             "comparing two versions of the client (default: this one)")
    parser.add_argument("--watcher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("warning")
    if args.watcher:
        asyncio.run(watcher(args.kubeconfig))
        return 0
    args.objects = sorted(int(n) for n in args.objects.split(","))
    json.dump(run(args), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
