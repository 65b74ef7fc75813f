"""The minimal valid Canary that unit tests of the analysis, alerts and validation build on."""

from __future__ import annotations

from typing import Any


def canary_object(analysis: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Gateway API Canary for Deployment ``podinfo`` in namespace ``test`` with ``analysis`` as spec.analysis."""
    obj: dict[str, Any] = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateway"}]},
            "analysis": analysis,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj
