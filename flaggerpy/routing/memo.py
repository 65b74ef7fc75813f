"""What a router remembers about one canary's route between reconciles.

Every field is a cache that the cluster can rebuild: losing it costs a rebuild or a read, never a wrong write. The
engine keeps one per canary (in its per-canary memo) and drops it with the canary, so a controller that sees
thousands of canaries come and go holds memory only for the ones that exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flaggerpy.apis.jsondata import mapping
from flaggerpy.routing.build import RouteFeatures, RouteWeights, desired_route
from flaggerpy.routing.normalize import managed_spec, normalize_spec


@dataclass
class RouteMemo:
    """One canary's route: its desired form, the normalised live spec, our last write, whether we warned."""

    desired: tuple[tuple[Any, ...], Any, dict[str, Any], dict[str, Any]] | None = None
    """(inputs, spec, desired route, its normalised managed spec) as last built."""
    live: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    """((kind, namespace, name, uid, resourceVersion), normalised managed spec) of the live route last compared."""
    last_written: tuple[str, Mapping[str, Any]] | None = None
    """(kind, object) our last write returned, until the informer has caught up with it (read-your-writes)."""
    warned: bool = False
    """Whether the options the route CRD cannot carry were reported already."""

    def desired_route(self, doc: Mapping[str, Any], kind: str, weights: RouteWeights, api_version: str,
                      features: RouteFeatures) -> tuple[dict[str, Any], dict[str, Any]]:
        """(desired route, normalised managed spec), rebuilt only when an input changed; SpecError for an invalid
        Canary, as ``desired_route``.

        A route follows from the Canary's spec, identity, revision and phase (session-affinity cookies), the
        weights, the API version and the CRD's features; between two steps none of these change, yet every
        reconcile of the canary compares its route. The objects handed out are shared and must not be edited.
        """
        meta = mapping(doc.get("metadata"))
        status = mapping(doc.get("status"))
        spec = doc.get("spec")
        inputs = (kind, meta.get("namespace"), meta.get("name"), meta.get("uid"), status.get("lastAppliedSpec"),
                  status.get("phase"), status.get("previousSessionAffinityCookie"), weights, api_version, features)
        hit = self.desired
        if hit is not None and hit[0] == inputs and hit[1] == spec:
            return hit[2], hit[3]
        desired = desired_route(doc, weights, api_version=api_version, features=features)
        normalized = normalize_spec(managed_spec(desired.get("spec")), kind)
        self.desired = (inputs, spec, desired, normalized)
        return desired, normalized

    def normalized(self, route: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """``normalize_spec(managed_spec(route.spec))``, computed once per route version; read-only.

        A route is compared with its desired spec on every reconcile of its canary, but it changes only when
        someone writes it; normalising the same version again each time would be wasted work.
        """
        meta = route.get("metadata") or {}
        version = (kind, meta.get("namespace"), meta.get("name"), meta.get("uid"), meta.get("resourceVersion"))
        hit = self.live
        if hit is not None and meta.get("resourceVersion") and hit[0] == version:
            return hit[1]
        out = normalize_spec(managed_spec(route.get("spec")), kind)
        if meta.get("resourceVersion"):
            self.live = (version, out)
        return out
