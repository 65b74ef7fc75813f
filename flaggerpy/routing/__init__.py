"""Traffic routing: Gateway API HTTPRoute / GRPCRoute weights for a Canary.

The engine uses :class:`Router` objects made by :func:`new_router` or :class:`Routers`; the pure builders in
``build`` and the drift check in ``drift`` need no cluster.
"""

from flaggerpy.routing.base import Router, provider_api_version
from flaggerpy.routing.build import RouteFeatures, RouteWeights, desired_route, desired_spec, route_kind
from flaggerpy.routing.drift import intended_weights, route_drifted
from flaggerpy.routing.errors import (
    InvalidWeights,
    RouteNotOwned,
    RouterError,
    UnsupportedProvider,
)
from flaggerpy.routing.factory import Routers, new_router
from flaggerpy.routing.gatewayapi import GatewayAPIRouter, LiveLookup

__all__ = [
    "GatewayAPIRouter",
    "InvalidWeights",
    "LiveLookup",
    "RouteFeatures",
    "RouteNotOwned",
    "RouteWeights",
    "Router",
    "RouterError",
    "Routers",
    "UnsupportedProvider",
    "desired_route",
    "desired_spec",
    "intended_weights",
    "new_router",
    "provider_api_version",
    "route_drifted",
    "route_kind",
]
