"""The data plane inside a running sandbox, driven like a user would: kubectl and HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.gateway.dataplane import CONTROLLER_NAME, Request
from tests.integration.kubectl import kubectl
from tests.paths import GATEWAY_API_CRDS

CRDS = GATEWAY_API_CRDS
GW = "gateway.networking.k8s.io"
HOST = "app.example.com"
pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}")

MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sandbox}
spec: {controllerName: sandbox.flaggerpy.io/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: infra}
spec:
  gatewayClassName: sandbox
  listeners:
  - name: http
    protocol: HTTP
    port: 80
    allowedRoutes: {namespaces: {from: All}}
---
apiVersion: v1
kind: Service
metadata: {name: podinfo-primary, namespace: test}
spec:
  selector: {app: podinfo-primary}
  ports: [{port: 9898}]
---
apiVersion: v1
kind: Service
metadata: {name: podinfo-canary, namespace: test}
spec:
  selector: {app: podinfo}
  ports: [{port: 9898}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo-primary, namespace: test}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo-primary}}
  template:
    metadata: {labels: {app: podinfo-primary}}
    spec: {containers: [{name: podinfod, image: ghcr.io/stefanprodan/podinfo:6.0.0}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: test}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata:
      labels: {app: podinfo}
      annotations: {sandbox.flaggerpy.io/error-rate: "0.25", sandbox.flaggerpy.io/latency: "20ms"}
    spec: {containers: [{name: podinfod, image: ghcr.io/stefanprodan/podinfo:6.0.1}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: podinfo, namespace: test}
spec:
  parentRefs: [{name: public, namespace: infra}]
  hostnames: [app.example.com]
  rules:
  - backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 80}
    - {name: podinfo-canary, port: 9898, weight: 20}
"""


async def install(sb: Sandbox) -> None:
    """Apply the Gateway API CRDs and the podinfo primary/canary world to a sandbox."""
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", doc)
    for doc in yaml.safe_load_all(MANIFESTS):
        group = doc["apiVersion"].rpartition("/")[0]
        kind = doc["kind"].lower()
        plural = kind + ("es" if kind.endswith("s") else "s")
        await sb.cluster.create(group, plural, doc)


async def _until(check: Any, within: float = 10.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


def _route_conditions(route: dict) -> dict[str, dict]:
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent["controllerName"] == CONTROLLER_NAME:
            return {c["type"]: c for c in parent["conditions"]}
    return {}


async def ready(sb: Sandbox) -> None:
    """Wait until the canary Deployment is ready and the route programmed."""
    async def ready() -> bool:
        deployment = sb.cluster.get("apps", "deployments", "test", "podinfo") or {}
        route = sb.cluster.get(GW, "httproutes", "test", "podinfo") or {}
        return bool((deployment.get("status") or {}).get("readyReplicas")) and bool(_route_conditions(route))

    await _until(ready)
    await sb.dataplane.wait_programmed()


async def test_kubectl_shows_the_gateway_and_route_status() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        route = json.loads(await kubectl(sb, "get", "httproutes.v1beta1.gateway.networking.k8s.io", "podinfo",
                                          "-n", "test", "-o", "json"))
        conditions = _route_conditions(route)
        assert conditions["Accepted"]["status"] == "True"
        assert conditions["ResolvedRefs"]["status"] == "True"
        gateway = json.loads(await kubectl(sb, "get", "gateway", "public", "-n", "infra", "-o", "json"))
        assert {c["type"]: c["status"] for c in gateway["status"]["conditions"]} == {
            "Accepted": "True", "Programmed": "True"}
        assert gateway["status"]["listeners"][0]["attachedRoutes"] == 1
        gateway_class = json.loads(await kubectl(sb, "get", "gatewayclass", "sandbox", "-o", "json"))
        assert gateway_class["status"]["conditions"][0]["type"] == "Accepted"
        assert gateway_class["status"]["conditions"][0]["status"] == "True"

        # An edit naming a missing Service is reported against the new generation.
        patch = {"spec": {"rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": 50},
                                                     {"name": "podinfo-next", "port": 9898, "weight": 50}]}]}}
        await kubectl(sb, "patch", "httproute", "podinfo", "-n", "test", "--type", "merge", "-p", json.dumps(patch))

        async def reported() -> dict | None:
            route = sb.cluster.get(GW, "httproutes", "test", "podinfo") or {}
            resolved = _route_conditions(route).get("ResolvedRefs", {})
            return resolved if resolved.get("observedGeneration") == 2 else None

        resolved = await _until(reported)
        assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
        # Half the requests go to the missing backend and get a 500, like on a real Gateway.
        sb.dataplane.reseed(1)
        codes = [sb.dataplane.handle(Request(HOST)).status for _ in range(2000)]
        assert abs(codes.count(500) / 2000 - 0.5) < 0.05


async def test_traffic_started_over_http_is_split_and_counted() -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05) as sb:
        await install(sb)
        await ready(sb)
        async with aiohttp.ClientSession(base_url=sb.url) as client:
            async with client.post("/sandbox/dataplane/traffic", json={"host": HOST, "rps": 2000}) as reply:
                assert reply.status == 201
                traffic_id = (await reply.json())["id"]

            async def enough() -> dict | None:
                async with client.get("/sandbox/dataplane/stats") as reply:
                    stats = await reply.json()
                total = sum(item["requests"] for item in stats["services"])
                return stats if total >= 1000 else None

            await _until(enough)
            async with client.delete(f"/sandbox/dataplane/traffic/{traffic_id}") as reply:
                assert (await reply.json()) == {"stopped": 1}
            async with client.get("/sandbox/dataplane/metrics") as reply:
                text = await reply.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        per_cluster: dict[str, float] = {}
        for sample in families["envoy_cluster_upstream_rq"].samples:
            name = sample.labels["envoy_cluster_name"]
            per_cluster[name] = per_cluster.get(name, 0) + sample.value
        total = sum(per_cluster.values())
        assert abs(per_cluster["test_podinfo-canary_9898"] / total - 0.2) < 0.05
        canary = sb.dataplane.stats("test", "podinfo-canary")
        # Four binomial sigmas of the canary's own ~200 requests: a wrong error rate, not chance.
        assert abs(canary.error_rate - 0.25) < 4 * math.sqrt(0.25 * 0.75 / canary.requests)
        assert sb.dataplane.stats("test", "podinfo-primary").errors == 0
        istio = {s.labels["destination_workload"] for s in families["istio_requests"].samples}
        assert istio == {"podinfo", "podinfo-primary"}


async def test_with_many_routes_an_edit_costs_one_status_write_for_that_route_only() -> None:
    async with Sandbox(dataplane=True, ready_delay=0.05, cel_rules=False) as sb:
        await install(sb)
        await ready(sb)
        for index in range(200):
            await sb.cluster.create(GW, "httproutes", {
                "apiVersion": f"{GW}/v1", "kind": "HTTPRoute",
                "metadata": {"name": f"app-{index}", "namespace": "test"},
                "spec": {"parentRefs": [{"name": "public", "namespace": "infra"}],
                         "hostnames": [f"app-{index}.example.com"],
                         "rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898}]}]},
            })

        async def all_accepted() -> bool:
            return all(_route_conditions(route).get("Accepted", {}).get("status") == "True"
                       for route in sb.cluster.list(GW, "httproutes", "test"))

        await _until(all_accepted)
        await sb.dataplane.wait_programmed()
        gateway = sb.cluster.get(GW, "gateways", "infra", "public")
        assert gateway["status"]["listeners"][0]["attachedRoutes"] == 201

        status_writes: list[tuple[str, str]] = []

        async def observe() -> None:
            async for change in sb.cluster.changes([(GW, "httproutes"), (GW, "gateways")]):
                status_writes.append((change.plural, change.object["metadata"]["name"]))

        observer = asyncio.create_task(observe())
        await asyncio.sleep(0)
        route = sb.cluster.get(GW, "httproutes", "test", "app-42")
        route["spec"]["rules"][0]["backendRefs"] = [{"name": "podinfo-primary", "port": 9898, "weight": 90},
                                                    {"name": "podinfo-canary", "port": 9898, "weight": 10}]
        await sb.cluster.update(GW, "httproutes", route)

        async def accepted_again() -> bool:
            stored = sb.cluster.get(GW, "httproutes", "test", "app-42") or {}
            return _route_conditions(stored).get("Accepted", {}).get("observedGeneration") == 2

        await _until(accepted_again)
        await sb.dataplane.wait_programmed()
        observer.cancel()
        await asyncio.gather(observer, return_exceptions=True)
        # The edit itself, then one status write; the Gateway and the other 200 routes are left alone.
        assert status_writes == [("httproutes", "app-42"), ("httproutes", "app-42")]
        sb.dataplane.reseed(3)
        backends = [sb.dataplane.handle(Request("app-42.example.com")).backend.name for _ in range(1000)]
        assert 50 < backends.count("podinfo-canary") < 150
        assert sb.dataplane.handle(Request("app-41.example.com")).backend.name == "podinfo-primary"
