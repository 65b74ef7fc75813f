"""The contract between the canary engine and traffic routing, and the factory keyed by ``spec.provider``.

The engine only ever talks to a :class:`Router`; which API object carries the traffic split is the router's
business. Every method takes the Canary (typed model or its Kubernetes JSON).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flaggerpy.kube.api import KubeClient
from flaggerpy.routing.build import RouteFeatures
from flaggerpy.routing.errors import UnsupportedProvider
from flaggerpy.routing.gatewayapi import GatewayAPIRouter, LiveLookup

PROVIDERS: dict[str, str] = {
    "gatewayapi": "v1",
    "gatewayapi:v1": "v1",
    "gatewayapi:v1beta1": "v1beta1",
}
"""Provider string → HTTPRoute API version. An unset provider means ``gatewayapi`` (v1)."""


@runtime_checkable
class Router(Protocol):
    """Traffic routing for one kind of provider."""

    async def reconcile(self, canary: Any, *, force: bool = False) -> bool:
        """Create the route (100% primary) or repair it to the weights persisted in the Canary's status; True when
        it had to write.

        ``force`` writes it even when the cache shows no difference (traffic must provably leave the canary).
        Raises SpecError for an invalid Canary and RouteNotOwned when a foreign route holds the name.
        """
        ...

    async def set_routes(self, canary: Any, primary_weight: int, canary_weight: int, mirror: bool = False) -> None:
        """Route ``primary_weight`` / ``canary_weight`` percent (summing to 100); optionally mirror to the canary."""
        ...

    async def get_routes(self, canary: Any) -> tuple[int, int, bool]:
        """The live (primary weight, canary weight, mirrored)."""
        ...

    async def is_accepted(self, canary: Any) -> tuple[bool, str]:
        """Whether every parent Gateway accepted the current route; otherwise a reason a human can act on."""
        ...

    async def finalize(self, canary: Any) -> None:
        """Revert on deletion (revertOnDeletion): all traffic to the apex Service, route released."""
        ...


def provider_api_version(provider: str | None) -> str:
    """The HTTPRoute API version for a ``spec.provider`` value; UnsupportedProvider for anything else."""
    key = (provider or "gatewayapi").strip()
    if key not in PROVIDERS:
        raise UnsupportedProvider(key, tuple(PROVIDERS))
    return PROVIDERS[key]


def new_router(
    provider: str | None,
    kube: KubeClient,
    *,
    get_live: LiveLookup | None = None,
    features: RouteFeatures | None = None,
) -> Router:
    """A router for ``provider`` (``gatewayapi``, ``gatewayapi:v1``, ``gatewayapi:v1beta1``)."""
    return GatewayAPIRouter(kube, api_version=provider_api_version(provider), get_live=get_live, features=features)


class Routers:
    """One router per provider for the whole process, so each reads the route CRD's features only once.

    ``get_live`` looks up v1 HTTPRoutes, ``get_live_v1beta1`` v1beta1 HTTPRoutes and ``get_live_grpc`` GRPCRoutes
    in the engine's informer caches.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        get_live: LiveLookup | None = None,
        get_live_grpc: LiveLookup | None = None,
        get_live_v1beta1: LiveLookup | None = None,
    ) -> None:
        self._kube = kube
        self._get_live = {"v1": get_live, "v1beta1": get_live_v1beta1}
        self._get_live_grpc = get_live_grpc
        self._by_version: dict[str, Router] = {}

    def wrote(self, kind: str, namespace: str, name: str, resource_version: str) -> bool:
        """Whether some router of this process wrote exactly this version of the route (an echo to ignore)."""
        return any(isinstance(router, GatewayAPIRouter) and router.wrote(kind, namespace, name, resource_version)
                   for router in self._by_version.values())

    def for_provider(self, provider: str | None) -> Router:
        """The router for a Canary's ``spec.provider``; UnsupportedProvider names the field when unknown."""
        version = provider_api_version(provider)
        if version not in self._by_version:
            self._by_version[version] = GatewayAPIRouter(
                self._kube, api_version=version, get_live=self._get_live.get(version),
                get_live_grpc=self._get_live_grpc,
            )
        return self._by_version[version]
