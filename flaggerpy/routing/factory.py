"""The routers of a process, keyed by ``spec.provider`` (one small interface in ``base``, one module per
implementation, as Flagger's router factory)."""

from __future__ import annotations

from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.ownwrites import OwnWrites
from flaggerpy.routing.base import Router, provider_api_version
from flaggerpy.routing.build import RouteFeatures
from flaggerpy.routing.gatewayapi import GatewayAPIRouter, LiveLookup


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
    in the engine's informer caches; ``own_writes`` is the process's tracker of its own writes.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        get_live: LiveLookup | None = None,
        get_live_grpc: LiveLookup | None = None,
        get_live_v1beta1: LiveLookup | None = None,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self._kube = kube
        self._own_writes = own_writes
        self._get_live = {"v1": get_live, "v1beta1": get_live_v1beta1}
        self._get_live_grpc = get_live_grpc
        self._by_version: dict[str, Router] = {}

    def for_provider(self, provider: str | None) -> Router:
        """The router for a Canary's ``spec.provider``; UnsupportedProvider names the field when unknown."""
        version = provider_api_version(provider)
        if version not in self._by_version:
            self._by_version[version] = GatewayAPIRouter(
                self._kube, api_version=version, get_live=self._get_live.get(version),
                get_live_grpc=self._get_live_grpc, own_writes=self._own_writes,
            )
        return self._by_version[version]
