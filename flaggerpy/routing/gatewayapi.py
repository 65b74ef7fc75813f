"""The Gateway API router: one HTTPRoute (or GRPCRoute) per Canary, written through the kube layer.

It reads the live route from the engine's informer cache when one is injected (``get_live``) and falls back to a
GET; it never lists. It writes only when the route differs from the desired one once server defaults are
accounted for, with a merge patch that carries the resourceVersion it compared against, so a concurrent edit
surfaces as a Conflict and is re-read and re-compared instead of being overwritten blindly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from flaggerpy.apis.flagger import Canary
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.errors import AlreadyExists, Conflict, NotFound
from flaggerpy.kube.ownwrites import OwnWrites
from flaggerpy.kube.resources import GRPCROUTES_V1, HTTPROUTES_V1, HTTPROUTES_V1BETA1
from flaggerpy.log import get_logger
from flaggerpy.routing.acceptance import route_acceptance
from flaggerpy.routing.build import (
    ALL_PRIMARY,
    API_VERSIONS,
    GRPC_ROUTE,
    HTTP_ROUTE,
    STANDARD_V1_6,
    RouteFeatures,
    RouteWeights,
    canary_doc,
    desired_route,
    desired_spec,
    owner_reference,
    route_kind,
    service_names,
)
from flaggerpy.routing.drift import spec_drifted
from flaggerpy.routing.errors import RouteNotOwned
from flaggerpy.routing.features import FeatureDetector
from flaggerpy.routing.memo import RouteMemo
from flaggerpy.routing.normalize import MANAGED_SPEC_KEYS

log = get_logger(__name__)

LiveLookup = Callable[[str, str], Mapping[str, Any] | None]
"""``get_live(namespace, name)``: the route from an informer cache, or None when the cache does not hold it."""

WRITE_ATTEMPTS = 4
"""Read-compare-write rounds before giving up when others keep writing the same route."""
RELEASED_ANNOTATION = "flaggerpy.io/released-by-canary"
"""Set on a route finalize() released; its value is the Canary name allowed to adopt the route again."""
TAKEOVER_ANNOTATION = "flaggerpy.io/takeover-by-canary"
"""Set by a user on an existing route: its value is the Canary name that may take the route over, as Flagger takes
over any route of its name. Without it a route the Canary does not own is never overwritten (Flagger #1857)."""


def _route_name(doc: Mapping[str, Any]) -> tuple[str, str]:
    return str((doc.get("metadata") or {}).get("namespace") or ""), service_names(doc)[0]


def controller_of(route: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The route's controller ownerReference, if it has one."""
    for ref in (route.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def owned_by(route: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """True when the route's controller is this Canary (same uid; same name when the Canary has no uid yet)."""
    ref = controller_of(route)
    if ref is None or ref.get("kind") != "Canary" or not str(ref.get("apiVersion", "")).startswith("flagger.app/"):
        return False
    meta = doc.get("metadata") or {}
    if meta.get("uid"):
        return bool(ref.get("uid") == meta["uid"])
    return bool(ref.get("name") == meta.get("name"))


def released_to(route: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """True when the route may be adopted by this Canary: a deleted Canary of this name released it (finalize) and
    nobody controls it since, or its owner handed it over with the takeover annotation naming this Canary."""
    annotations = (route.get("metadata") or {}).get("annotations") or {}
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        return False
    if annotations.get(TAKEOVER_ANNOTATION) == name:
        return True
    return controller_of(route) is None and annotations.get(RELEASED_ANNOTATION) == name


def adoption_patch(patch: dict[str, Any] | None, live: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` extended to make the Canary the route's controller again and drop the release mark."""
    meta = live.get("metadata") or {}
    out: dict[str, Any] = (
        copy.deepcopy(patch) if patch else {"metadata": {"resourceVersion": meta.get("resourceVersion")}}
    )
    others = [r for r in meta.get("ownerReferences") or [] if not r.get("controller")]
    out["metadata"]["ownerReferences"] = [*others, owner_reference(doc)]
    out["metadata"].setdefault("annotations", {})[RELEASED_ANNOTATION] = None
    return out


def _describe_owner(ref: Mapping[str, Any] | None, namespace: str) -> str | None:
    if ref is None:
        return None
    return f"{ref.get('kind', '?')} {namespace}/{ref.get('name', '?')}"


def merge_patch(desired: Mapping[str, Any], live: Mapping[str, Any], kind: str,
                live_specs: RouteMemo | None = None,
                normalized: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The JSON merge patch that turns ``live`` into ``desired`` on the fields a canary owns, or None if none.

    Labels and annotations are merged (foreign keys stay); spec fields other than parentRefs, hostnames and rules
    are left alone. The patch carries the live resourceVersion, so the API server refuses it if the route changed
    since it was read.
    """
    body: dict[str, Any] = {}
    live_meta = live.get("metadata") or {}
    want_meta = desired.get("metadata") or {}
    for key in ("labels", "annotations"):
        have = live_meta.get(key) or {}
        changed = {k: v for k, v in (want_meta.get(key) or {}).items() if have.get(k) != v}
        if changed:
            body.setdefault("metadata", {})[key] = changed
    want_spec = desired.get("spec") or {}
    if spec_drifted(want_spec, live, kind, live_specs, normalized):
        # Lists are atomic in the CRD, so a merge patch replaces each one whole; None deletes an absent field.
        body["spec"] = {key: want_spec.get(key) for key in MANAGED_SPEC_KEYS}
    if not body:
        return None
    body.setdefault("metadata", {})["resourceVersion"] = live_meta.get("resourceVersion")
    return body


def full_patch(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that writes every label, annotation and managed spec field of ``desired``, whatever the
    live object holds; it carries the live resourceVersion, so it fails with a Conflict if ``live`` is stale."""
    want_meta = desired.get("metadata") or {}
    meta: dict[str, Any] = {"resourceVersion": (live.get("metadata") or {}).get("resourceVersion")}
    for key in ("labels", "annotations"):
        if want_meta.get(key):
            meta[key] = dict(want_meta[key])
    want_spec = desired.get("spec") or {}
    return {"metadata": meta, "spec": {key: want_spec.get(key) for key in MANAGED_SPEC_KEYS}}



@dataclass(frozen=True)
class _RouteWrite:
    """What one ``_apply`` wants written, shared by its attempts."""

    doc: dict[str, Any]
    kind: str
    namespace: str
    name: str
    weights: RouteWeights
    create_weights: RouteWeights
    features: RouteFeatures
    normalized: Mapping[str, Any]
    force: bool
    memo: RouteMemo


class GatewayAPIRouter:
    """Routes a Canary's traffic with Gateway API ``HTTPRoute`` (v1 or v1beta1) or ``GRPCRoute`` (v1)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        api_version: str = "v1",
        get_live: LiveLookup | None = None,
        get_live_grpc: LiveLookup | None = None,
        features: RouteFeatures | None = None,
        own_writes: OwnWrites | None = None,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version: must be one of {', '.join(API_VERSIONS)}, not {api_version!r}")
        self.api_version = api_version
        self._kube = kube
        self._lookups = {HTTP_ROUTE: get_live, GRPC_ROUTE: get_live_grpc}
        # Our own writes: a cache older than the last one has not seen it yet, and its echo wakes nobody.
        self._own_writes = own_writes if own_writes is not None else OwnWrites()
        self._fixed_features = features
        self._detector = FeatureDetector(kube, api_version)

    def _resource(self, kind: str) -> Resource:
        if kind == GRPC_ROUTE:
            return GRPCROUTES_V1
        return HTTPROUTES_V1 if self.api_version == "v1" else HTTPROUTES_V1BETA1

    async def _features(self, kind: str) -> RouteFeatures:
        if kind == GRPC_ROUTE:
            return STANDARD_V1_6
        if self._fixed_features is not None:
            return self._fixed_features
        return await self._detector.get()

    def _cached(self, kind: str, namespace: str, name: str, memo: RouteMemo) -> Mapping[str, Any] | None:
        """The route as this process last knew it without asking the API server: the informer's copy, or the
        answer to our own last write while the informer has not caught up with it yet (read-only either way)."""
        lookup = self._lookups.get(kind)
        if lookup is None:
            return None
        cached = lookup(namespace, name)
        mine = memo.last_written[1] if memo.last_written is not None and memo.last_written[0] == kind else None
        if mine is None:
            return cached
        if cached is not None and not self._own_writes.is_behind(self._resource(kind), cached):
            memo.last_written = None  # the cache has seen our write: it is the better copy from now on
            return cached
        return mine

    async def _get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            return await self._kube.get(self._resource(kind), name, namespace)
        except NotFound:
            return None

    async def _read(self, kind: str, namespace: str, name: str, memo: RouteMemo) -> Mapping[str, Any] | None:
        """The live route (read-only), from the cache when it has one, else from the API server; None if absent."""
        cached = self._cached(kind, namespace, name, memo)
        return cached if cached is not None else await self._get(kind, namespace, name)

    def _remember(self, kind: str, written: Mapping[str, Any], memo: RouteMemo) -> None:
        self._own_writes.remember(self._resource(kind), written)
        if self._lookups.get(kind) is not None:
            memo.last_written = (kind, written)

    def _warn_unsupported(self, doc: Mapping[str, Any], kind: str, features: RouteFeatures, memo: RouteMemo) -> None:
        """Say once per Canary which configured options this cluster's route CRD cannot carry."""
        if kind == GRPC_ROUTE:
            return
        service = (doc.get("spec") or {}).get("service") or {}
        missing = [
            field
            for field, configured, supported in (
                ("spec.service.corsPolicy", service.get("corsPolicy"), features.cors),
                ("spec.service.retries", service.get("retries"), features.retry),
            )
            if configured and not supported
        ]
        if missing and not memo.warned:
            memo.warned = True
            log.warning("route CRD lacks fields, options not applied", canary="/".join(_route_name(doc)),
                        fields=missing)

    def _check_owner(self, live: Mapping[str, Any], doc: Mapping[str, Any], kind: str) -> bool:
        """True when the route must be adopted (released by a Canary of this name); RouteNotOwned if foreign."""
        if owned_by(live, doc):
            return False
        if released_to(live, doc):
            return True
        namespace, name = _route_name(doc)
        raise RouteNotOwned(f"{kind} {namespace}/{name}", _describe_owner(controller_of(live), namespace))

    async def _apply(self, canary: Any, weights: RouteWeights, create_weights: RouteWeights, memo: RouteMemo,
                     force: bool = False) -> bool:
        doc = canary_doc(canary)
        kind = route_kind(doc)
        namespace, name = _route_name(doc)
        features = await self._features(kind)
        # Build before any I/O: an invalid Canary fails here with every bad field named.
        desired, normalized = memo.desired_route(doc, kind, weights, self.api_version, features)
        self._warn_unsupported(doc, kind, features, memo)
        write = _RouteWrite(doc, kind, namespace, name, weights, create_weights, features, normalized, force, memo)
        try:
            return await self._write(write, desired, fresh=False)
        except (Conflict, AlreadyExists):
            pass  # the cache is behind: from now on read the server, with backoff between attempts
        wrote = False
        async for attempt in self._retrying(WRITE_ATTEMPTS - 1):
            with attempt:
                wrote = await self._write(write, desired, fresh=True)
        return wrote

    @staticmethod
    def _retrying(attempts: int = WRITE_ATTEMPTS) -> AsyncRetrying:
        """Read-compare-write rounds against others writing the same route, with backoff between them."""
        return AsyncRetrying(
            retry=retry_if_exception_type((Conflict, AlreadyExists)),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            reraise=True,
        )

    async def _write(self, write: _RouteWrite, desired: dict[str, Any], *, fresh: bool) -> bool:
        """One read-compare-write round (True when it wrote); ``fresh`` reads the route from the API server."""
        kind, namespace, name, doc = write.kind, write.namespace, write.name, write.doc
        resource = self._resource(kind)
        cached = None if fresh else self._cached(kind, namespace, name, write.memo)
        live = cached if cached is not None else await self._get(kind, namespace, name)
        if live is None:
            created = desired
            if write.create_weights != write.weights:
                created = desired_route(doc, write.create_weights, api_version=self.api_version,
                                        features=write.features)
            self._remember(kind, await self._kube.create(resource, created), write.memo)
            log.info("route created", route=f"{kind} {namespace}/{name}", canary=f"{namespace}/{name}")
            return True
        try:
            adopt = self._check_owner(live, doc, kind)
        except RouteNotOwned:
            if cached is None:
                raise
            # A cache that has not seen the route released or adopted yet must not make it look foreign.
            live = await self._get(kind, namespace, name)
            cached = None
            if live is None:
                raise Conflict(409, "Conflict", f"{kind} {namespace}/{name} is gone") from None
            adopt = self._check_owner(live, doc, kind)
        patch = merge_patch(desired, live, kind, write.memo, write.normalized)
        if write.force and cached is not None:
            # A cache can miss a write (a replica that died, a relist): write what must hold whatever the cache
            # shows. The cached resourceVersion turns a stale cache into a Conflict, then a re-read.
            patch = full_patch(desired, live)
        if adopt:
            patch = adoption_patch(patch, live, doc)
        if patch is None:
            return False
        self._remember(kind, await self._kube.patch(resource, name, namespace, patch, "merge"), write.memo)
        log.info("route updated", route=f"{kind} {namespace}/{name}", primary=write.weights.primary,
                 canary=write.weights.canary, mirror=write.weights.mirror)
        return True

    async def reconcile(self, canary: Canary, weights: RouteWeights, *, memo: RouteMemo, force: bool = False) -> bool:
        """Create the route (100% primary) or bring it to ``weights``, repairing any drift; True when that took a
        write.

        A missing route is created all-primary whatever ``weights`` say: its Gateway has not accepted it yet, and
        the next step moves it on. ``force`` writes the desired route even when the cache shows it already: for the
        moments traffic must provably leave the canary (its pods are about to go), where a cache that missed a
        write must not make the router skip the one write that matters. It costs a write, never a read (unless the
        write conflicts).
        """
        return await self._apply(canary_doc(canary), weights, ALL_PRIMARY, memo, force)

    async def is_accepted(self, canary: Canary, *, memo: RouteMemo) -> tuple[bool, str]:
        """(True, "") once every parent Gateway accepted the route's current generation, else (False, reason)."""
        doc = canary_doc(canary)
        kind = route_kind(doc)
        namespace, name = _route_name(doc)
        live = await self._read(kind, namespace, name, memo)
        if live is None:
            return False, f"{kind} {namespace}/{name} does not exist yet"
        return route_acceptance(live)

    async def finalize(self, canary: Canary, *, memo: RouteMemo) -> None:
        """On deletion with revertOnDeletion: send all traffic to the apex Service and release the route.

        The apex Service selects the restored target by then, and dropping the ownerReference keeps the route
        (and so the traffic) alive after the Canary is gone; an annotation lets a Canary of the same name adopt
        it again later. A route the Canary does not own is left alone.
        """
        doc = canary_doc(canary)
        kind = route_kind(doc)
        spec = apex_spec(doc, await self._features(kind))
        # The Gateway writes the route's status at any time: a Conflict means read again and release that version.
        async for attempt in self._retrying():
            with attempt:
                await self._release(doc, kind, spec, memo)

    async def _release(self, doc: dict[str, Any], kind: str, spec: Mapping[str, Any], memo: RouteMemo) -> None:
        namespace, name = _route_name(doc)
        live = await self._get(kind, namespace, name)
        if live is None or not owned_by(live, doc):
            return
        owners = [r for r in (live.get("metadata") or {}).get("ownerReferences") or [] if not r.get("controller")]
        patch = {
            "metadata": {
                "resourceVersion": (live.get("metadata") or {}).get("resourceVersion"),
                "ownerReferences": owners or None,
                "annotations": {RELEASED_ANNOTATION: name},
            },
            "spec": {key: spec.get(key) for key in MANAGED_SPEC_KEYS},
        }
        self._remember(kind, await self._kube.patch(self._resource(kind), name, namespace, patch, "merge"), memo)
        log.info("route reverted to the apex service", route=f"{kind} {namespace}/{name}")


def apex_spec(canary: Any, features: RouteFeatures = STANDARD_V1_6) -> dict[str, Any]:
    """The route spec after a revert: the canary's matches and filters, all traffic to the apex Service."""
    doc = copy.deepcopy(canary_doc(canary))
    spec = doc.setdefault("spec", {})
    analysis = spec.get("analysis") or spec.get("canaryAnalysis") or {}
    # Without A/B matches and cookies the route is one weighted rule per match set, easy to repoint.
    for key in ("match", "sessionAffinity"):
        analysis.pop(key, None)
    out = desired_spec(doc, ALL_PRIMARY, features)
    apex, _, _ = service_names(doc)
    port = (spec.get("service") or {}).get("port")
    for rule in out["rules"]:
        rule["backendRefs"] = [{"group": "", "kind": "Service", "name": apex, "port": port, "weight": 100}]
    return out


__all__ = [
    "GatewayAPIRouter",
    "LiveLookup",
    "apex_spec",
    "controller_of",
    "full_patch",
    "merge_patch",
    "owned_by",
    "released_to",
]
