"""The shipped examples are usable as written: applied with kubectl, the controller initialises every one of them
and generates its HTTPRoute on the example's Gateway, with the A/B match and the blue/green dark launch in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import Cluster, ControllerFactory, wait_for
from tests.integration.kubectl import kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
NAMES = ("podinfo", "abtest", "bluegreen")


async def test_examples_initialise(sandbox: Sandbox, cluster: Cluster, run_controller: ControllerFactory) -> None:
    for example in ("podinfo-gatewayapi-canary.yaml", "podinfo-ab-testing.yaml", "podinfo-blue-green.yaml"):
        await kubectl(sandbox, "apply", "-f", str(EXAMPLES / example))
    async with run_controller():
        await wait_for(lambda: all(cluster.status(n).get("phase") == "Initialized" for n in NAMES), 30,
                       lambda: str({n: cluster.status(n).get("phase") for n in NAMES}))
    for name in NAMES:
        route = cluster.get("gateway.networking.k8s.io", "httproutes", name)
        assert route is not None
        assert route["spec"]["parentRefs"][0]["name"] == "public"
        assert route["spec"]["hostnames"] == [f"{name}.example.com"]
        weights = dict(cluster.route_weights(name))
        assert weights[f"{name}-primary"] == 100 and weights.get(f"{name}-canary", 0) == 0
    ab_rules = cluster.get("gateway.networking.k8s.io", "httproutes", "abtest")["spec"]["rules"]
    # The A/B matches get their own rules ahead of the weighted default rule.
    assert any(m.get("headers") for rule in ab_rules[:-1] for m in rule.get("matches", []))


async def test_traefik_example_initialises_on_its_traefik_gateway(
    sandbox: Sandbox, cluster: Cluster, run_controller: ControllerFactory,
) -> None:
    await kubectl(sandbox, "apply", "-f", str(EXAMPLES / "podinfo-traefik-canary.yaml"))
    async with run_controller():
        await wait_for(lambda: cluster.status("podinfo-traefik").get("phase") == "Initialized", 30,
                       lambda: str(cluster.status("podinfo-traefik")))
    route = cluster.get("gateway.networking.k8s.io", "httproutes", "podinfo-traefik")
    assert route is not None and route["spec"]["parentRefs"][0]["name"] == "traefik"
    gateway_class = cluster.get("gateway.networking.k8s.io", "gatewayclasses", "traefik", namespace="")
    assert gateway_class is not None and gateway_class["spec"]["controllerName"] == "traefik.io/gateway-controller"
