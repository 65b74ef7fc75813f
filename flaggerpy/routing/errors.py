"""Errors the router raises; the engine turns each into a status condition and an Event."""

from __future__ import annotations


class RouterError(Exception):
    """Base class: the route could not be built, read or written."""


class UnsupportedProvider(RouterError, ValueError):
    """``spec.provider`` names no router flaggerpy has."""

    def __init__(self, provider: str, known: tuple[str, ...]) -> None:
        self.provider = provider
        self.known = known
        super().__init__(f'spec.provider: "{provider}" is not a Gateway API provider ({", ".join(known)})')


class InvalidWeights(RouterError, ValueError):
    """The weights asked for are not two integers in 0..100 that sum to 100 (invariant 1)."""


class RouteNotOwned(RouterError):
    """A route with the canary's name exists but is controlled by something else (Flagger #1857).

    ``route`` is ``Kind namespace/name``; ``owner`` describes the controller owner, or is None when the route has
    no controller owner at all (created by hand or by another tool).
    """

    def __init__(self, route: str, owner: str | None) -> None:
        self.route = route
        self.owner = owner
        held = f"it is controlled by {owner}" if owner else "it has no controller owner"
        super().__init__(f"{route} exists and is not owned by this Canary ({held}); refusing to overwrite it "
                         f"(annotate it flaggerpy.io/takeover-by-canary=<canary name> to hand it over)")
