"""Pure builders: a Canary plus weights → the HTTPRoute (or GRPCRoute) it should have.

No I/O here: the router (``gatewayapi.py``) reads and writes, these functions decide. The Canary may be the typed
model (``flaggerpy.apis.flagger.Canary``) or its Kubernetes JSON; both are read through the JSON form, whose field
names are Flagger's and stable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from flaggerpy.apis.errors import FieldError, SpecError
from flaggerpy.apis.flagger import ANALYSIS_INTERVAL
from flaggerpy.routing import affinity, filters, matches
from flaggerpy.routing.checks import check_match_counts, shape_problems
from flaggerpy.routing.errors import InvalidWeights

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_ROUTE = "HTTPRoute"
GRPC_ROUTE = "GRPCRoute"
API_VERSIONS = ("v1", "v1beta1")
# Flux must not revert what the controller writes (Flagger sets the same two markers).
FLUX_ANNOTATIONS = {
    "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
    "helm.toolkit.fluxcd.io/driftDetection": "disabled",
}
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class RouteFeatures:
    """What the cluster's route CRD supports beyond the core; detected from the served schema by the router."""

    cors: bool = True
    retry: bool = False


STANDARD_V1_6 = RouteFeatures(cors=True, retry=False)


@dataclass(frozen=True)
class RouteWeights:
    """Traffic split between primary and canary, plus whether requests are mirrored to the canary."""

    primary: int
    canary: int
    mirror: bool = False

    def __post_init__(self) -> None:
        for label, value in (("primary", self.primary), ("canary", self.canary)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
                raise InvalidWeights(f"{label} weight must be an integer between 0 and 100, not {value!r}")
        if self.primary + self.canary != 100:
            raise InvalidWeights(f"weights must sum to 100, not {self.primary} + {self.canary}")


ALL_PRIMARY = RouteWeights(100, 0)


def canary_doc(canary: Any) -> dict[str, Any]:
    """The Canary as Kubernetes JSON (camelCase keys), whether it came typed or as a dict."""
    if isinstance(canary, Mapping):
        return dict(canary)
    return canary.to_dict()  # type: ignore[no-any-return]


def _analysis(doc: Mapping[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    # ``canaryAnalysis`` is Flagger's deprecated spelling of ``analysis``.
    return dict(spec.get("analysis") or spec.get("canaryAnalysis") or {})


def service_names(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    """Apex, primary and canary Service names: ``service.name`` or the target's name, plus -primary / -canary."""
    spec = doc.get("spec") or {}
    apex = (spec.get("service") or {}).get("name") or (spec.get("targetRef") or {}).get("name") or ""
    return apex, f"{apex}-primary", f"{apex}-canary"


def route_kind(canary: Any) -> str:
    """GRPCRoute when ``service.appProtocol`` is grpc (Flagger #1935), HTTPRoute otherwise."""
    service = (canary_doc(canary).get("spec") or {}).get("service") or {}
    return GRPC_ROUTE if str(service.get("appProtocol") or "").lower() == "grpc" else HTTP_ROUTE


def owner_reference(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The controller ownerReference that ties the route to its Canary (garbage-collected with it)."""
    meta = doc.get("metadata") or {}
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def desired_metadata(doc: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations the canary puts on its route: ``service.apex`` plus the Flux markers.

    Keys listed in ``service.unmanagedMetadata`` are left to whoever else manages them.
    """
    service = (doc.get("spec") or {}).get("service") or {}
    apex = service.get("apex") or {}
    unmanaged = service.get("unmanagedMetadata") or {}
    skip_labels = set(unmanaged.get("labels") or ())
    skip_annotations = set(unmanaged.get("annotations") or ())
    labels = {k: str(v) for k, v in (apex.get("labels") or {}).items() if k not in skip_labels}
    annotations = {k: str(v) for k, v in (apex.get("annotations") or {}).items() if k not in skip_annotations}
    for key, value in FLUX_ANNOTATIONS.items():
        if key not in skip_annotations:
            annotations[key] = value
    return labels, annotations


def _parent_refs(service: Mapping[str, Any], errors: list[FieldError]) -> list[dict[str, Any]]:
    refs = service.get("gatewayRefs") or []
    if not refs:
        errors.append(FieldError("spec.service.gatewayRefs", "required: the Gateway(s) the route attaches to"))
        return []
    out = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, Mapping) or not ref.get("name"):
            errors.append(FieldError(f"spec.service.gatewayRefs[{i}].name", "required"))
            continue
        out.append({k: ref[k] for k in ("group", "kind", "namespace", "name", "sectionName", "port") if k in ref})
    return out


def _hostnames(service: Mapping[str, Any], errors: list[FieldError]) -> list[str]:
    hosts = service.get("hosts") or []
    for i, host in enumerate(hosts):
        if not isinstance(host, str) or len(host) > 253 or not _HOSTNAME.match(host):
            errors.append(FieldError(f"spec.service.hosts[{i}]", f"{host!r} is not a valid hostname"))
    return [h for h in hosts if isinstance(h, str)]


def _valid_port(port: Any) -> TypeGuard[int]:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


def _port(doc: Mapping[str, Any]) -> int:
    """``spec.service.port``; 0 when invalid, which :func:`desired_spec` reports before any rule is used."""
    port = ((doc.get("spec") or {}).get("service") or {}).get("port")
    return port if _valid_port(port) else 0


def _backend(name: str, port: int, weight: int, extra_filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    backend: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}
    if extra_filters:
        backend["filters"] = extra_filters
    return backend


def _with_response_header(rule_filters: list[dict[str, Any]], name: str, value: str) -> list[dict[str, Any]]:
    """``rule_filters`` plus one added response header, merged into an existing ResponseHeaderModifier if any.

    The CRD allows one ResponseHeaderModifier per rule, so a second filter would be rejected.
    """
    out = []
    merged = False
    for item in rule_filters:
        if item.get("type") == "ResponseHeaderModifier" and not merged:
            modifier = dict(item["responseHeaderModifier"])
            modifier["add"] = [*modifier.get("add", []), {"name": name, "value": value}]
            out.append({"type": "ResponseHeaderModifier", "responseHeaderModifier": modifier})
            merged = True
        else:
            out.append(item)
    if not merged:
        out.append(
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": name, "value": value}]}}
        )
    return out


def _mirror_percent(analysis: Mapping[str, Any], errors: list[FieldError]) -> int | None:
    weight = analysis.get("mirrorWeight")
    if weight in (None, 0):
        return None
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 < weight <= 100:
        errors.append(FieldError("spec.analysis.mirrorWeight", "must be an integer between 1 and 100"))
        return None
    return weight


def _interval_seconds(analysis: Mapping[str, Any], errors: list[FieldError]) -> int:
    seconds = filters.duration_seconds(str(analysis.get("interval") or ANALYSIS_INTERVAL))
    if seconds is None:
        errors.append(FieldError("spec.analysis.interval", f'"{analysis.get("interval")}" is not a duration'))
        return 60
    return max(1, int(seconds))


RuleMaker = Callable[..., dict[str, Any]]


def _affinity(
    doc: Mapping[str, Any],
    weights: RouteWeights,
    service_matches: list[dict[str, Any]],
    rule: RuleMaker,
    errors: list[FieldError],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Session-affinity pieces: the sticky rules (placed before the weighted one) and the primary and canary
    backend filters of the weighted rule that hand out the cookies. All empty without ``sessionAffinity``."""
    session = _analysis(doc).get("sessionAffinity")
    if not session:
        return [], [], []
    cookie_name = session.get("cookieName")
    if not cookie_name:
        errors.append(FieldError("spec.analysis.sessionAffinity.cookieName", "required"))
        return [], [], []
    port = _port(doc)
    _, primary, canary = service_names(doc)
    value = affinity.cookie_value(doc, "canary")
    canary_rule_matches = matches.merge_matches([affinity.cookie_match(cookie_name, value)], service_matches)
    if weights.canary == 0:
        if not affinity.run_ended(doc):
            return [], [], []
        # The run is over: whoever still carries its cookie is told to drop it.
        value = affinity.expired_cookie(doc, cookie_name)
        canary_rule_matches = matches.merge_matches([affinity.cookie_match(cookie_name, value)], service_matches)
        expire = rule(
            canary_rule_matches, [_backend(primary, port, weights.primary), _backend(canary, port, weights.canary)]
        )
        expire["filters"] = _with_response_header(
            expire.get("filters", []), "Set-Cookie", f"{cookie_name}={value}; Max-Age=-1"
        )
        return [expire], [], []
    canary_filters = [
        filters.set_cookie_filter(affinity.build_cookie(session, cookie_name, value, affinity.max_age(session)))
    ]
    sticky = [rule(canary_rule_matches, [_backend(primary, port, 0), _backend(canary, port, 100)])]
    primary_cookie = session.get("primaryCookieName")
    if not primary_cookie:
        return sticky, [], canary_filters
    value = affinity.cookie_value(doc, "primary")
    # Flagger gives the primary cookie one analysis interval of life: its holder is re-drawn at the next step.
    lifetime = _interval_seconds(_analysis(doc), errors)
    primary_filters = [filters.set_cookie_filter(affinity.build_cookie(session, primary_cookie, value, lifetime))]
    sticky.append(
        rule(
            matches.merge_matches([affinity.cookie_match(primary_cookie, value)], service_matches),
            [_backend(primary, port, 100), _backend(canary, port, 0)],
        )
    )
    return sticky, primary_filters, canary_filters


def _http_rules(
    doc: Mapping[str, Any], weights: RouteWeights, features: RouteFeatures, errors: list[FieldError]
) -> list[dict[str, Any]]:
    service = (doc.get("spec") or {}).get("service") or {}
    analysis = _analysis(doc)
    _, primary, canary = service_names(doc)
    port = _port(doc)

    service_matches = matches.http_matches(service.get("match"), "spec.service.match", errors) or [
        dict(matches.DEFAULT_PATH_MATCH)
    ]
    base_filters = filters.header_filters(service.get("headers"), errors)
    rewrite = filters.rewrite_filter(service.get("rewrite"), service_matches, errors)
    if rewrite is not None:
        base_filters.append(rewrite)
    if features.cors:
        cors = filters.cors_filter(service.get("corsPolicy"), errors)
        if cors is not None:
            base_filters.append(cors)
    base_filters.extend(filters.static_mirror_filters(service.get("mirror"), errors))
    timeouts = filters.rule_timeouts(service, errors)
    retry = filters.rule_retry(service.get("retries"), errors) if features.retry else None

    def rule(
        rule_matches: list[dict[str, Any]], backends: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"matches": rule_matches}
        rule_filters = [*base_filters, *(extra or ())]
        if rule_filters:
            out["filters"] = rule_filters
        out["backendRefs"] = backends
        if timeouts:
            out["timeouts"] = dict(timeouts)
        if retry:
            out["retry"] = dict(retry)
        return out

    mirror = [filters.mirror_filter(canary, port, _mirror_percent(analysis, errors))] if weights.mirror else []
    sticky, primary_filters, canary_filters = _affinity(doc, weights, service_matches, rule, errors)
    weighted_matches = service_matches
    ab_matches = matches.http_matches(analysis.get("match"), "spec.analysis.match", errors)
    if ab_matches:
        weighted_matches = matches.merge_matches(ab_matches, service_matches)
    weighted = rule(
        weighted_matches,
        [
            _backend(primary, port, weights.primary, primary_filters),
            _backend(canary, port, weights.canary, canary_filters),
        ],
        mirror,
    )
    rules = [*sticky, weighted]
    if ab_matches:
        # Everyone outside the A/B audience stays on the primary.
        rules.append(rule(service_matches, [_backend(primary, port, 100)]))
    return rules


def _grpc_rules(doc: Mapping[str, Any], weights: RouteWeights, errors: list[FieldError]) -> list[dict[str, Any]]:
    service = (doc.get("spec") or {}).get("service") or {}
    analysis = _analysis(doc)
    _, primary, canary = service_names(doc)
    port = _port(doc)
    for key in ("timeout", "backendTimeout", "rewrite", "corsPolicy", "retries"):
        if service.get(key):
            errors.append(FieldError(f"spec.service.{key}", "is not supported by GRPCRoute (appProtocol: grpc)"))
    if analysis.get("sessionAffinity"):
        errors.append(FieldError("spec.analysis.sessionAffinity", "is not supported by GRPCRoute (appProtocol: grpc)"))

    service_matches = matches.grpc_matches(service.get("match"), "spec.service.match", errors)
    base_filters = filters.header_filters(service.get("headers"), errors)
    base_filters.extend(filters.static_mirror_filters(service.get("mirror"), errors))

    def rule(
        rule_matches: list[dict[str, Any]], backends: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if rule_matches:
            out["matches"] = rule_matches
        rule_filters = [*base_filters, *(extra or ())]
        if rule_filters:
            out["filters"] = rule_filters
        out["backendRefs"] = backends
        return out

    mirror = [filters.mirror_filter(canary, port, _mirror_percent(analysis, errors))] if weights.mirror else []
    ab_matches = matches.grpc_matches(analysis.get("match"), "spec.analysis.match", errors)
    weighted_matches = matches.merge_matches(ab_matches, service_matches) if ab_matches else service_matches
    rules = [
        rule(
            weighted_matches, [_backend(primary, port, weights.primary), _backend(canary, port, weights.canary)], mirror
        )
    ]
    if ab_matches:
        rules.append(rule(service_matches, [_backend(primary, port, 100)]))
    return rules


def desired_spec(canary: Any, weights: RouteWeights, features: RouteFeatures = STANDARD_V1_6) -> dict[str, Any]:
    """The route ``spec`` (parentRefs, hostnames, rules) for these weights; raises SpecError naming every bad field."""
    doc = canary_doc(canary)
    errors = shape_problems(doc)
    if errors:
        raise SpecError(errors, kind="Canary")
    service = doc["spec"]["service"]
    if not _port(doc):
        errors.append(FieldError("spec.service.port", "required: a port number between 1 and 65535"))
    if not service_names(doc)[0]:
        errors.append(FieldError("spec.targetRef.name", "required"))
    spec: dict[str, Any] = {"parentRefs": _parent_refs(service, errors)}
    hosts = _hostnames(service, errors)
    if hosts:
        spec["hostnames"] = hosts
    if route_kind(doc) == GRPC_ROUTE:
        spec["rules"] = _grpc_rules(doc, weights, errors)
    else:
        spec["rules"] = _http_rules(doc, weights, features, errors)
    check_match_counts(spec["rules"], bool(_analysis(doc).get("match")), errors)
    if errors:
        raise SpecError(errors, kind="Canary")
    return spec


def desired_route(
    canary: Any,
    weights: RouteWeights,
    *,
    api_version: str = "v1",
    features: RouteFeatures = STANDARD_V1_6,
) -> dict[str, Any]:
    """The whole route object: named after the apex Service, in the Canary's namespace, owned by the Canary."""
    doc = canary_doc(canary)
    if api_version not in API_VERSIONS:
        raise ValueError(f"api_version: must be one of {', '.join(API_VERSIONS)}, not {api_version!r}")
    # The spec first: it checks the shapes everything below relies on.
    spec = desired_spec(doc, weights, features)
    kind = route_kind(doc)
    if kind == GRPC_ROUTE:
        # GRPCRoute is served as v1 only since Gateway API v1.1.
        api_version = "v1"
    meta = doc.get("metadata") or {}
    labels, annotations = desired_metadata(doc)
    metadata: dict[str, Any] = {
        "name": service_names(doc)[0],
        "namespace": meta.get("namespace", ""),
        "annotations": annotations,
        "ownerReferences": [owner_reference(doc)],
    }
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{api_version}",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }
