"""Admission that reuses what a write shares with the stored object (a status write, a merge patch) admits exactly
what full admission does."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.sandbox.apiserver.schema import admit

REPO = Path(__file__).resolve().parents[2]
GATEWAY_CRDS = Path(os.environ.get("FLAGGERPY_GATEWAY_CRDS", REPO.parent / "shared" / "gateway-api-v1.6.1"))
HTTPROUTE_CRD = GATEWAY_CRDS / "gateway.networking.k8s.io_httproutes.yaml"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 200), st.floats(-2, 2, allow_nan=False),
                    st.sampled_from(["", "a", "abc", "ABC", "toolong", "A", "B", "2026-01-01T00:00:00Z", "x-y"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["name", "a", "b", "x", "weight"]), inner, max_size=3)), max_leaves=8)


@functools.cache
def crd_schema(path: Path, version: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for doc in yaml.load_all(path.read_text(), Loader=loader):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            for served in doc["spec"]["versions"]:
                if served["name"] == version:
                    return served["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{path} has no version {version}")


def canary() -> dict[str, Any]:
    return {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "web", "namespace": "d"},
            "spec": {"provider": "gatewayapi:v1",
                     "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "service": {"port": 80, "gatewayRefs": [{"name": "gw", "namespace": "g"}]},
                     "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50}},
            "status": {"phase": "Progressing", "canaryWeight": 10, "failedChecks": 0, "iterations": 0,
                       "conditions": [{"type": "Promoted", "status": "Unknown", "reason": "Progressing",
                                       "message": "m", "lastUpdateTime": "2026-01-01T00:00:00Z",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def httproute() -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "g"}], "hostnames": ["web.example.com"],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [{"name": "web-primary", "port": 80, "weight": 90},
                                                {"name": "web-canary", "port": 80, "weight": 10}]}]}}


MUTATIONS = st.lists(st.tuples(st.lists(st.sampled_from(
    ["spec", "status", "analysis", "service", "rules", "backendRefs", "weight", "port", "name", "conditions",
     "stepWeight", "targetRef", "kind", "parentRefs", "hostnames", "matches", "path", "type", 0, 1]),
    min_size=1, max_size=5), values), max_size=3)


def mutate(obj: dict[str, Any], mutations: list[tuple[list[Any], Any]]) -> dict[str, Any]:
    """Set ``value`` at the deepest prefix of ``path`` that exists (so most mutations land somewhere real)."""
    obj = copy.deepcopy(obj)
    for path, value in mutations:
        node: Any = obj
        for step in path[:-1]:
            child = None
            if isinstance(node, dict) and isinstance(step, str):
                child = node.get(step)
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                child = node[step]
            if not isinstance(child, dict | list):
                break
            node = child
        last = path[-1]
        settable = isinstance(last, str) if isinstance(node, dict) else isinstance(last, int) and last < len(node)
        if settable:
            node[last] = value
    return obj


@pytest.mark.skipif(not HTTPROUTE_CRD.exists(),
                    reason="the Gateway API CRDs are not beside the checkout")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=MUTATIONS)
def test_reusing_the_stored_object_admits_what_full_admission_does(mutations: list[tuple[list[Any], Any]]) -> None:
    schemas = ((httproute(), crd_schema(HTTPROUTE_CRD, "v1")),
               (canary(), crd_schema(REPO / "deploy" / "crds" / "canaries.yaml", "v1beta1")))
    for obj, schema in schemas:
        stored, causes = admit(obj, schema)
        assert causes == []
        # As a merge patch or a status write makes it: changed parts new, the rest the stored dicts themselves.
        changed = mutate(stored, mutations)
        shared = {key: stored[key] if key in stored and value == stored[key] else value
                  for key, value in changed.items()}
        assert admit(shared, schema, stored) == admit(copy.deepcopy(shared), schema)
