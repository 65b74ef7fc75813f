"""Reading a live route back as weights, for the router tests (the engine never reads weights off a route: it
writes the ones its status holds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.routing import affinity
from flaggerpy.routing.build import RouteWeights, canary_doc, service_names
from flaggerpy.routing.memo import RouteMemo


def weights_of(route: Mapping[str, Any] | None, canary: Any) -> tuple[int, int, bool]:
    """(primary, canary, mirrored) read from a route: the weighted rule is the one with both backends that is
    not a session-affinity cookie rule; a missing weight means the server default, 1."""
    assert route is not None, "the route does not exist"
    doc = canary_doc(canary)
    _, primary, canary_name = service_names(doc)
    spec = doc.get("spec") or {}
    session = (spec.get("analysis") or spec.get("canaryAnalysis") or {}).get("sessionAffinity") or {}
    cookies = tuple(n for n in (session.get("cookieName"), session.get("primaryCookieName")) if n)
    weights: tuple[int, int] | None = None
    mirrored = False
    for rule in (route.get("spec") or {}).get("rules") or []:
        by_name = {b.get("name"): b for b in rule.get("backendRefs") or []}
        if (
            weights is None
            and primary in by_name
            and canary_name in by_name
            and not affinity.is_cookie_rule(rule, cookies)
        ):
            weights = (int(by_name[primary].get("weight", 1)), int(by_name[canary_name].get("weight", 1)))
        for item in rule.get("filters") or []:
            target = (item.get("requestMirror") or {}).get("backendRef") or {}
            if item.get("type") == "RequestMirror" and target.get("name") == canary_name:
                mirrored = True
    assert weights is not None, f"no rule with both {primary} and {canary_name}"
    return weights[0], weights[1], mirrored


class Remembering:
    """A router with one RouteMemo per canary, as the engine keeps them (a new one remembers nothing)."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.memos: dict[tuple[str, str], RouteMemo] = {}

    def memo(self, canary: Any) -> RouteMemo:
        meta = canary_doc(canary).get("metadata") or {}
        return self.memos.setdefault((meta.get("namespace", ""), meta.get("name", "")), RouteMemo())

    async def reconcile(self, canary: Any, weights: RouteWeights, *, force: bool = False) -> bool:
        return bool(await self.router.reconcile(canary, weights, memo=self.memo(canary), force=force))

    async def is_accepted(self, canary: Any) -> tuple[bool, str]:
        return await self.router.is_accepted(canary, memo=self.memo(canary))  # type: ignore[no-any-return]

    async def finalize(self, canary: Any) -> None:
        await self.router.finalize(canary, memo=self.memo(canary))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)
