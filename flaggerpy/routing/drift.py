"""Has a live route drifted from what its Canary intends? Used by the engine's HTTPRoute reconciler.

The intended weights come from the Canary's persisted status (the only memory), so after someone edits the route
by hand, ``router.reconcile(canary)`` puts back exactly what the analysis had reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.jsondata import mapping
from flaggerpy.routing.build import (
    ALL_PRIMARY,
    STANDARD_V1_6,
    RouteFeatures,
    RouteWeights,
    canary_doc,
    desired_metadata,
    desired_spec,
    route_kind,
)
from flaggerpy.routing.memo import RouteMemo
from flaggerpy.routing.normalize import managed_spec, normalize_spec, specs_equal

# Phases in which the engine may have switched mirroring on (Flagger ignores the mirror filter in these too).
_MIRROR_PHASES = ("Progressing", "WaitingPromotion")
# Phases in which an A/B audience that reached the canary stays there (until "Routing all traffic to primary").
_AB_PHASES = ("Progressing", "WaitingPromotion", "Promoting")


def intended_weights(canary: Any) -> RouteWeights:
    """The split the Canary's status says the route should have now.

    ``status.canaryWeight`` is what the last persisted step set (A/B excepted, see below). Mirroring is on while
    an analysis with ``analysis.mirror`` runs, once traffic flows (a first iteration passed, or a canary weight is
    set: both only happen after the canary is ready, invariant 2) and until the canary takes all traffic at the
    switch.
    """
    doc = canary_doc(canary)
    status = mapping(doc.get("status"))
    spec = mapping(doc.get("spec"))
    analysis = mapping(spec.get("analysis") or spec.get("canaryAnalysis"))
    weight = status.get("canaryWeight") or 0
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
        return ALL_PRIMARY
    iterations = status.get("iterations") or 0
    flowing = weight > 0 or (isinstance(iterations, int) and iterations > 0)
    if analysis.get("match") and analysis.get("iterations") and flowing and status.get("phase") in _AB_PHASES:
        # A/B: like Flagger, status.canaryWeight stays 0 while the matched requests all go to the canary.
        return RouteWeights(0, 100)
    mirror = bool(analysis.get("mirror")) and status.get("phase") in _MIRROR_PHASES and flowing and weight < 100
    return RouteWeights(100 - weight, weight, mirror)


def metadata_drifted(canary: Any, live: Mapping[str, Any]) -> bool:
    """True when a label or annotation the canary sets is missing or different (foreign keys do not count)."""
    labels, annotations = desired_metadata(canary_doc(canary))
    meta = live.get("metadata") or {}
    live_labels = meta.get("labels") or {}
    live_annotations = meta.get("annotations") or {}
    return any(live_labels.get(k) != v for k, v in labels.items()) or any(
        live_annotations.get(k) != v for k, v in annotations.items()
    )


def spec_drifted(desired: Mapping[str, Any], live: Mapping[str, Any], kind: str,
                 live_specs: RouteMemo | None = None, normalized: Mapping[str, Any] | None = None) -> bool:
    """True when the managed part of the live spec differs from ``desired`` beyond server defaults.

    ``live_specs`` remembers the live side per route version and ``normalized`` is the desired side already
    normalised (the router keeps both).
    """
    if live_specs is None:
        return not specs_equal(managed_spec(desired), managed_spec(live.get("spec")), kind)
    want = normalized if normalized is not None else normalize_spec(managed_spec(desired), kind)
    return want != live_specs.normalized(live, kind)


def route_drifted(
    canary: Any,
    live: Mapping[str, Any],
    weights: RouteWeights | None = None,
    features: RouteFeatures = STANDARD_V1_6,
) -> bool:
    """True when ``live`` differs from the route the Canary intends (spec normalised for defaults, or metadata).

    ``weights`` defaults to :func:`intended_weights`. Raises SpecError when the Canary itself is invalid.
    """
    doc = canary_doc(canary)
    wanted = desired_spec(doc, weights or intended_weights(doc), features)
    return spec_drifted(wanted, live, route_kind(doc)) or metadata_drifted(doc, live)
