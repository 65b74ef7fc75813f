"""Canaries and object lookups for the analysis tests (no tests here)."""

from __future__ import annotations

import copy
from typing import Any

from flaggerpy.apis.flagger import AlertProvider, Canary, MetricTemplate


def canary(metrics: list[dict[str, Any]], *, name: str = "podinfo", namespace: str = "test", **spec: Any) -> Canary:
    """A valid Gateway API canary of ``podinfo`` with the given ``analysis.metrics``."""
    body: dict[str, Any] = {
        "provider": "gatewayapi:v1",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "service": {"port": 9898, "gatewayRefs": [{"name": "public", "namespace": "gateway"}]},
        "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10, "metrics": metrics},
    }
    body.update(spec)
    return Canary.from_dict(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": name, "namespace": namespace},
            "spec": copy.deepcopy(body),
        }
    )


def template(name: str, namespace: str, query: str, provider: dict[str, Any]) -> MetricTemplate:
    """A MetricTemplate."""
    return MetricTemplate.from_dict(
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"provider": provider, "query": query},
        }
    )


class Lookup:
    """An in-memory ObjectLookup; records which secrets were asked for."""

    def __init__(
        self,
        templates: list[MetricTemplate] | None = None,
        secrets: dict[tuple[str, str], dict[str, str]] | None = None,
    ) -> None:
        self.templates = {(t.metadata.namespace, t.metadata.name): t for t in templates or []}
        self.secrets = secrets or {}
        self.secret_requests: list[tuple[str, str]] = []

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        return self.templates.get((namespace, name))

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        return None

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        self.secret_requests.append((namespace, name))
        return self.secrets.get((namespace, name))
