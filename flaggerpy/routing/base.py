"""The contract between the canary engine and traffic routing, and the provider strings it accepts.

The engine only ever talks to a :class:`Router`; which API object carries the traffic split is the router's
business. Every method takes the typed Canary (its status is the one the step persists); the weights are the
engine's decision and are passed explicitly. The implementations and the factory keyed by ``spec.provider`` live
in ``gatewayapi`` and ``factory``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flaggerpy.apis.flagger import GATEWAY_PROVIDERS, Canary
from flaggerpy.routing.build import RouteWeights
from flaggerpy.routing.errors import UnsupportedProvider
from flaggerpy.routing.memo import RouteMemo


@runtime_checkable
class Router(Protocol):
    """Traffic routing for one kind of provider."""

    async def reconcile(self, canary: Canary, weights: RouteWeights, *, memo: RouteMemo, force: bool = False) -> bool:
        """Create the route (100% primary) or bring it to ``weights`` (repairing any drift); True when it had to
        write.

        ``force`` writes it even when the cache shows no difference (traffic must provably leave the canary).
        Raises SpecError for an invalid Canary and RouteNotOwned when a foreign route holds the name.
        """
        ...

    async def is_accepted(self, canary: Canary, *, memo: RouteMemo) -> tuple[bool, str]:
        """Whether every parent Gateway accepted the current route; otherwise a reason a human can act on."""
        ...

    async def finalize(self, canary: Canary, *, memo: RouteMemo) -> None:
        """Revert on deletion (revertOnDeletion): all traffic to the apex Service, route released."""
        ...


def provider_api_version(provider: str | None) -> str:
    """The HTTPRoute API version for a ``spec.provider`` value; UnsupportedProvider for anything else."""
    key = (provider or "gatewayapi").strip()
    if key not in GATEWAY_PROVIDERS:
        raise UnsupportedProvider(key, tuple(GATEWAY_PROVIDERS))
    return GATEWAY_PROVIDERS[key]
