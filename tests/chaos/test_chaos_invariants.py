"""The chaos observer itself: planted breaches of invariants 1-4 are each reported with the run, the invariant, the
canary and the resourceVersion of the object version that broke it, and correct histories are not reported."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flaggerpy.sandbox import Sandbox
from tests.chaos.invariants import GATEWAY_GROUP, InvariantObserver, Violation, report
from tests.manifests import GATEWAY_NAME, GATEWAY_NAMESPACE, NAMESPACE, canary, crd_documents, deployment, host_of

pytestmark = pytest.mark.chaos

OLD, NEW = "podinfo:1", "podinfo:2"
NAMES = ["steady", "overweight", "unready", "failed-open", "skipper"]



def route(name: str, canary_weight: int, primary_weight: int | None = None) -> dict[str, Any]:
    """The HTTPRoute a canary ``name`` has, at the given weights (primary defaults to the rest of 100)."""
    primary = 100 - canary_weight if primary_weight is None else primary_weight
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
                 "hostnames": [host_of(name)],
                 "rules": [{"backendRefs": [{"name": f"{name}-primary", "port": 9898, "weight": primary},
                                            {"name": f"{name}-canary", "port": 9898, "weight": canary_weight}]}]},
    }


def _ready(sb: Sandbox, name: str) -> bool:
    status = (sb.cluster.get("apps", "deployments", NAMESPACE, name) or {}).get("status") or {}
    return int(status.get("readyReplicas") or 0) > 0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with the HTTPRoute and Canary CRDs and the test namespace."""
    async with Sandbox(ready_delay=0.05, dataplane=False) as sb:
        # Only the kinds the observer watches: registering every Gateway API CRD takes seconds.
        for doc in (d for d in crd_documents() if d["spec"]["names"]["kind"] in ("HTTPRoute", "Canary")):
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        await sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": NAMESPACE}})
        yield sb


async def test_planted_breaches_name_the_invariant_the_canary_and_the_version(sandbox: Sandbox) -> None:
    sb = sandbox
    observer = InvariantObserver(sb, NAMESPACE, dict.fromkeys(NAMES, 50), OLD, "planted")
    observer.start()
    await asyncio.sleep(0)
    written: dict[str, list[str]] = {name: [] for name in NAMES}

    async def put(name: str, canary_weight: int, primary_weight: int | None = None) -> None:
        current = sb.cluster.get(GATEWAY_GROUP, "httproutes", NAMESPACE, name)
        obj = route(name, canary_weight, primary_weight)
        if current is None:
            stored = await sb.cluster.create(GATEWAY_GROUP, "httproutes", obj)
        else:
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            stored = await sb.cluster.update(GATEWAY_GROUP, "httproutes", obj)
        written[name].append(stored["metadata"]["resourceVersion"])

    async def phase(name: str, value: str) -> str:
        stored = await sb.cluster.patch_status("flagger.app", "canaries", NAMESPACE, name, {"phase": value})
        return f"Canary {NAMESPACE}/{name} resourceVersion {stored['metadata']['resourceVersion']}"

    async def primary_image(name: str, image: str) -> str:
        stored = await sb.cluster.patch("apps", "deployments", NAMESPACE, f"{name}-primary",
                                        {"spec": {"template": {"spec": {"containers": [
                                            {"name": "podinfod", "image": image}]}}}})
        return f"Deployment {NAMESPACE}/{name}-primary resourceVersion {stored['metadata']['resourceVersion']}"

    for name in NAMES:
        # Without replicas "unready" never has a ready pod: any weight on it breaks invariant 2.
        await sb.cluster.create("apps", "deployments", deployment(name, OLD, replicas=0 if name == "unready" else 1))
        await sb.cluster.create("apps", "deployments", deployment(f"{name}-primary", OLD))
        await sb.cluster.create("flagger.app", "canaries", canary(name))
        await put(name, 0)
    async with asyncio.timeout(10):
        while not all(_ready(sb, name) for name in NAMES if name != "unready"):
            observer.changed.clear()  # set on every change in the namespace, Deployment statuses included
            await observer.changed.wait()
    await put("overweight", 60, 40)  # sums to 100, above maxWeight 50
    await put("overweight", 0, 110)  # does not sum to 100
    await put("unready", 10)  # its Deployment never becomes ready
    await put("failed-open", 20)
    failed_at = await phase("failed-open", "Failed")  # with traffic still on the canary
    await put("skipper", 10)
    await put("skipper", 30)  # one step skipped
    await phase("skipper", "Promoting")
    await phase("skipper", "Progressing")
    twice_at = await phase("skipper", "Promoting")
    await primary_image("skipper", NEW)
    flapped_at = await primary_image("skipper", OLD)
    await phase("steady", "Succeeded")  # changes arrive in order: once this is seen, everything before it is
    async with asyncio.timeout(10):
        while observer.phase("steady") != "Succeeded":
            observer.changed.clear()
            await observer.changed.wait()
    await observer.stop()

    def at(name: str, index: int) -> str:
        return f"HTTPRoute {NAMESPACE}/{name} resourceVersion {written[name][index]}"

    found = {(v.invariant, v.canary, v.version) for v in observer.violations}
    explained = report(observer.violations)
    assert (1, "overweight", at("overweight", 1)) in found, explained
    assert (1, "overweight", at("overweight", 2)) in found, explained
    assert (2, "unready", at("unready", 1)) in found, explained
    assert (3, "failed-open", failed_at) in found, explained
    assert not [v for v in observer.violations if v.canary in ("steady", "skipper")], explained
    text = str(next(v for v in observer.violations if v.canary == "overweight" and "sum" in v.problem))
    assert text == (f"[planted] invariant 1 (route weights sum to 100 and the canary weight never exceeds maxWeight)"
                    f" broken for canary overweight at {at('overweight', 2)}: weights {{'overweight-primary': 110, "
                    f"'overweight-canary': 0}} sum to 110"), text

    history = observer.history_problems(10)
    explained = report(history)
    assert (Violation("planted", 4, "skipper", at("skipper", 2), "canary weight went from 10 to 30 (step 10): "
                                                                "[0, 10, 30]; status.canaryWeight went [0]")
            in history), explained
    assert any(v.version == twice_at and "promoted 2 times" in v.problem for v in history), explained
    assert any(v.version == flapped_at and "flapped" in v.problem for v in history), explained
    assert not [v for v in history if v.canary == "steady"], explained
