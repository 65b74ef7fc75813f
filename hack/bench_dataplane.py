"""Micro-benchmark of the sandbox Gateway data plane alone: how fast it accepts HTTPRoutes at scale.

    python3 hack/bench_dataplane.py --routes 100,1000,5000          # JSON on stdout, one object per size

Everything runs in one process, as in the sandbox: the in-process ``Cluster`` (no HTTP server, CEL rules off), one
Gateway, and per route a primary and a canary Service and Deployment plus an HTTPRoute with its own hostname. Then:

- cold start: the data plane starts with every route already stored; the time until all are ``Accepted`` at
  generation 1, and the process CPU seconds it took;
- churn: routes are edited round-robin at ``--rate`` edits per second for ``--duration`` seconds (the weights move
  like a canary step). For each edit: route written → ``Accepted`` with the new ``observedGeneration`` (p50, p99,
  max), the process CPU seconds per edit (the bench's own writes included, the same for every data plane) and the
  route status writes per edit (1 is ideal: one per generation, none for a status echo);
- requests: synthetic requests over 50 of the hosts, CPU microseconds per request.

Run it against another checkout with ``PYTHONPATH=<checkout> python3 hack/bench_dataplane.py`` (PYTHONPATH comes
before this repository on the import path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))
from flaggerpy.log import configure as configure_logging  # noqa: E402
from flaggerpy.sandbox.apiserver.cluster import Cluster  # noqa: E402
from flaggerpy.sandbox.apiserver.store import Store  # noqa: E402
from flaggerpy.sandbox.gateway.dataplane import CONTROLLER_NAME, DataPlaneSettings, GatewayDataPlane, Request  # noqa: E402

GW = "gateway.networking.k8s.io"
GATEWAY_CRDS = Path(os.environ.get("FLAGGERPY_GATEWAY_CRDS", REPO.parent / "shared" / "gateway-api-v1.6.1"))
NAMESPACE = "bench"


def _crds() -> list[dict[str, Any]]:
    docs = [doc for path in sorted(GATEWAY_CRDS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    return [doc for doc in docs if doc and doc.get("kind") == "CustomResourceDefinition"]


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": {"app": name}, "ports": [{"port": 9898}]}}


def _deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "podinfo:1.0.0"}]}}}}


def _route(index: int, canary_weight: int) -> dict[str, Any]:
    name = f"app-{index}"
    return {
        "apiVersion": f"{GW}/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "gateway"}],
            "hostnames": [f"{name}.example.com"],
            "rules": [{"backendRefs": [
                {"name": f"{name}-primary", "port": 9898, "weight": 100 - canary_weight},
                {"name": f"{name}-canary", "port": 9898, "weight": canary_weight},
            ]}],
        },
    }


def _accepted_generation(route: dict[str, Any]) -> int:
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") != CONTROLLER_NAME:
            continue
        for condition in parent.get("conditions") or []:
            if condition.get("type") == "Accepted" and condition.get("status") == "True":
                return int(condition.get("observedGeneration") or 0)
    return 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Observer:
    """Watches route events: acceptance per (route, generation) and how many events changed only the status."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.accepted: dict[str, int] = {}
        self.pending: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.status_writes = 0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for event in self.cluster.subscribe_events():
            if event.key != (GW, "httproutes") or event.type == "DELETED":
                continue
            old = event.old or {}
            if old and old.get("spec") == event.obj.get("spec") and old.get("status") != event.obj.get("status"):
                self.status_writes += 1
            name = event.obj["metadata"]["name"]
            generation = _accepted_generation(event.obj)
            if generation > self.accepted.get(name, 0):
                self.accepted[name] = generation
                written = self.pending.pop((name, generation), None)
                if written is not None:
                    self.latencies.append((time.perf_counter() - written) * 1000.0)
                self.changed.set()

    async def wait_all(self, names: list[str], generation: int, patience: float) -> bool:
        """True once every route in ``names`` is accepted at ``generation`` or later."""
        deadline = time.perf_counter() + patience
        while any(self.accepted.get(name, 0) < generation for name in names):
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return False
        return True


async def _populate(cluster: Cluster, routes: int) -> None:
    for doc in _crds():
        await cluster.create("apiextensions.k8s.io", "customresourcedefinitions", doc)
    for namespace in (NAMESPACE, "gateway"):
        await cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": namespace}})
    await cluster.create(GW, "gateways", {
        "apiVersion": f"{GW}/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "gateway"},
        "spec": {"gatewayClassName": "sandbox", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}]},
    })
    for index in range(routes):
        for suffix in ("primary", "canary"):
            await cluster.create("", "services", _service(f"app-{index}-{suffix}"))
            await cluster.create("apps", "deployments", _deployment(f"app-{index}-{suffix}"))
        await cluster.create(GW, "httproutes", _route(index, 0))


async def run_size(routes: int, rate: float, duration: float, settings: DataPlaneSettings,
                   patience: float) -> dict[str, Any]:
    """One benchmark at ``routes`` routes; a JSON-ready dict."""
    cluster = Cluster(store=Store(history_size=50_000), cel_rules=False)
    cluster.create_object(cluster.resource("", "namespaces"), "v1", "", {"metadata": {"name": "default"}})
    await _populate(cluster, routes)
    observer = Observer(cluster)
    observing = asyncio.create_task(observer.run())
    await asyncio.sleep(0)
    plane = GatewayDataPlane(settings)
    names = [f"app-{index}" for index in range(routes)]
    cpu, wall = time.process_time(), time.perf_counter()
    running = asyncio.create_task(plane.run(cluster))
    cold_ok = await observer.wait_all(names, 1, patience)
    cold = {"seconds": round(time.perf_counter() - wall, 3), "cpuSeconds": round(time.process_time() - cpu, 3),
            "allAccepted": cold_ok}
    await plane.wait_programmed()

    observer.status_writes = 0
    generations = dict.fromkeys(names, 1)
    edits = max(1, int(rate * duration))
    cpu, wall = time.process_time(), time.perf_counter()
    for edit in range(edits):
        # Pace by the schedule, not by sleeps per edit, so a slow event loop does not lower the offered rate.
        due = wall + edit / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        index = edit % routes
        name = names[index]
        generations[name] += 1
        stored = cluster.get(GW, "httproutes", NAMESPACE, name)
        assert stored is not None
        stored["spec"] = _route(index, (generations[name] * 10) % 60)["spec"]
        observer.pending[(name, generations[name])] = time.perf_counter()
        await cluster.update(GW, "httproutes", stored)
    edited = sorted({names[edit % routes] for edit in range(edits)})
    churn_ok = all([await observer.wait_all([name], generations[name], patience) for name in edited])
    await plane.wait_programmed()
    churn_cpu = time.process_time() - cpu
    latencies = observer.latencies

    requests = 2000
    cpu = time.process_time()
    for number in range(requests):
        plane.handle(Request(f"app-{number % min(50, routes)}.example.com", "/"))
    request_cpu_us = (time.process_time() - cpu) / requests * 1e6

    running.cancel()
    observing.cancel()
    await asyncio.gather(running, observing, return_exceptions=True)
    return {
        "routes": routes,
        "coldStart": cold,
        "churn": {
            "edits": edits,
            "ratePerSecond": rate,
            "allAccepted": churn_ok,
            "acceptMsP50": round(statistics.median(latencies), 2) if latencies else None,
            "acceptMsP99": round(_percentile(latencies, 0.99), 2),
            "acceptMsMax": round(max(latencies), 2) if latencies else None,
            "cpuMsPerEdit": round(churn_cpu / edits * 1000.0, 3),
            "statusWritesPerEdit": round(observer.status_writes / edits, 3),
        },
        "requestCpuUs": round(request_cpu_us, 1),
    }


def main() -> int:
    """Parse flags, run each size, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", default="100,1000", help="comma-separated route counts")
    parser.add_argument("--rate", type=float, default=100.0, help="route edits per second during churn")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of churn")
    parser.add_argument("--min-interval", type=float, default=DataPlaneSettings().min_interval,
                        help="data plane: minimum seconds between programming passes")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for acceptance")
    args = parser.parse_args()
    configure_logging("warning")
    settings = DataPlaneSettings(min_interval=args.min_interval, seed=1)
    results = []
    for size in (int(item) for item in args.routes.split(",")):
        result = asyncio.run(run_size(size, args.rate, args.duration, settings, args.timeout))
        print(json.dumps(result), flush=True)
        results.append(result)
    return 0 if all(r["coldStart"]["allAccepted"] and r["churn"]["allAccepted"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
