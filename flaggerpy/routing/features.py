"""What the cluster's route CRD can express, read once from the served schema and cached.

CORS became a standard HTTPRoute filter in Gateway API v1.3 and rule ``retry`` is still experimental; writing
either to a cluster whose CRD lacks it is rejected (unknown enum value) or silently pruned, so the router asks
the CRD instead of guessing from a version number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import ApiError, Forbidden, NotFound
from flaggerpy.kube.resources import CRDS
from flaggerpy.log import get_logger
from flaggerpy.routing.build import RouteFeatures
from flaggerpy.routing.errors import RouterError

log = get_logger(__name__)
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"
# When the CRD cannot be read, write only what every Gateway API release since v1.0 accepts.
CONSERVATIVE = RouteFeatures(cors=False, retry=False)


def features_from_crd(crd: Mapping[str, Any], api_version: str) -> RouteFeatures:
    """The features of the HTTPRoute schema served at ``api_version`` in a CustomResourceDefinition."""
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("name") != api_version:
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        rule = (
            schema.get("properties", {})
            .get("spec", {})
            .get("properties", {})
            .get("rules", {})
            .get("items", {})
            .get("properties", {})
        )
        filter_types = rule.get("filters", {}).get("items", {}).get("properties", {}).get("type", {}).get("enum", [])
        return RouteFeatures(cors="CORS" in filter_types, retry="retry" in rule)
    return CONSERVATIVE


class FeatureDetector:
    """Reads the HTTPRoute CRD through the kube layer the first time it is asked, then answers from memory."""

    def __init__(self, kube: KubeClient, api_version: str) -> None:
        self._kube = kube
        self._api_version = api_version
        self._cached: RouteFeatures | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> RouteFeatures:
        """HTTPRoute features: core only without the CRD or RBAC to read it; RouterError on other errors."""
        if self._cached is not None:
            return self._cached
        async with self._lock:
            if self._cached is not None:
                return self._cached
            try:
                crd = await self._kube.get(CRDS, HTTPROUTE_CRD)
            except (NotFound, Forbidden) as exc:
                # A permanent answer: without the CRD (or RBAC to read it) only core fields are safe.
                log.warning("route CRD unreadable, using core features only", crd=HTTPROUTE_CRD, error=str(exc))
                self._cached = CONSERVATIVE
                return self._cached
            except ApiError as exc:
                # Guessing here could write a route without a filter and then with it: fail this reconcile instead.
                raise RouterError(f"cannot read CustomResourceDefinition {HTTPROUTE_CRD}: {exc}") from exc
            self._cached = features_from_crd(crd, self._api_version)
            log.info(
                "route features detected",
                api_version=self._api_version,
                cors=self._cached.cors,
                retry=self._cached.retry,
            )
            return self._cached
