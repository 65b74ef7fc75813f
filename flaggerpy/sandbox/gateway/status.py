"""Programming the Gateways: which routes attach where, the status a conformant controller reports, and the table.

Everything here is a pure function of one route (or Gateway) and a read-only view of the rest of the cluster, so
the data plane can re-evaluate just the objects a change affects and write only the statuses that differ.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Mapping
from dataclasses import dataclass

from flaggerpy.sandbox.gateway.match import MatchError, intersect_hostnames
from flaggerpy.sandbox.gateway.table import (
    GRPCROUTE,
    HTTPROUTE,
    Entry,
    Resolver,
    RouteKey,
    compile_rules,
    make_entries,
)

GATEWAY_GROUP = "gateway.networking.k8s.io"
_ROUTE_PROTOCOLS = {"HTTP": (HTTPROUTE, GRPCROUTE), "HTTPS": (HTTPROUTE, GRPCROUTE)}


@dataclass(slots=True)
class World:
    """The read-only view of the cluster a route's evaluation needs (the data plane keeps it up to date)."""

    gateways: Mapping[tuple[str, str], dict]
    namespace_labels: Mapping[str, dict]
    resolver: Resolver
    controller_name: str
    # Gateways whose class names another controller that runs against the sandbox (Traefik): not ours to serve
    # or to write status for.
    foreign: Container[tuple[str, str]] = frozenset()


@dataclass(slots=True)
class RouteResult:
    """One route's evaluation: its desired ``status.parents`` and what it programs.

    ``parents`` is None when no parentRef names a Gateway (the route is none of our business); ``attachments``
    lists the (gateway namespace, gateway name, listener) it attached to, once per listener.
    """

    parents: list[dict] | None
    attachments: list[tuple[str, str, str]]
    entries: list[Entry]


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int, now: str,
               previous: list[dict]) -> dict:
    status = "True" if ok else "False"
    since = now
    for old in previous:
        # lastTransitionTime moves only when the condition's status flips, as in every Kubernetes API.
        if old.get("type") == kind and old.get("status") == status and old.get("lastTransitionTime"):
            since = old["lastTransitionTime"]
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def _meta(obj: dict) -> tuple[str, str, int]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", ""), int(meta.get("generation") or 1)


def _allows_namespace(listener: dict, gateway_ns: str, route_ns: str, namespace_labels: Mapping[str, dict]) -> bool:
    namespaces = ((listener.get("allowedRoutes") or {}).get("namespaces")) or {}
    policy = namespaces.get("from") or "Same"
    if policy == "All":
        return True
    if policy == "Same":
        return route_ns == gateway_ns
    if policy == "Selector":
        return _selector_matches(namespaces.get("selector") or {}, namespace_labels.get(route_ns, {}))
    return False


def _selector_matches(selector: dict, labels: dict) -> bool:
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels.get(key) in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def _listener_kinds(listener: dict) -> tuple[list[str], bool]:
    """(route kinds the listener accepts, whether every kind it names is supported)."""
    supported = _ROUTE_PROTOCOLS.get(listener.get("protocol", ""), ())
    wanted = (listener.get("allowedRoutes") or {}).get("kinds")
    if not wanted:
        return list(supported), True
    kinds = [
        item.get("kind")
        for item in wanted
        if (item.get("group") or GATEWAY_GROUP) == GATEWAY_GROUP and item.get("kind") in supported
    ]
    return kinds, len(kinds) == len(wanted)


@dataclass(slots=True)
class _Attach:
    accepted: bool
    reason: str
    message: str
    listeners: list[tuple[str, tuple[str, ...]]]  # (listener name, effective hostnames)


def _attach(route: dict, kind: str, ref: dict, gateway: dict | None, namespace_labels: Mapping[str, dict]) -> _Attach:
    route_ns = route["metadata"].get("namespace", "")
    if gateway is None:
        return _Attach(False, "NoMatchingParent", f"Gateway {ref.get('name')} not found", [])
    gateway_ns = gateway["metadata"].get("namespace", "")
    section, port = ref.get("sectionName"), ref.get("port")
    listeners = [
        item
        for item in (gateway.get("spec") or {}).get("listeners") or []
        if (not section or item.get("name") == section) and (port is None or item.get("port") == port)
    ]
    if not listeners:
        where = f"sectionName {section!r}" if section else f"port {port}"
        return _Attach(False, "NoMatchingParent", f"Gateway has no listener with {where}", [])
    allowed = [
        item
        for item in listeners
        if kind in _listener_kinds(item)[0] and _allows_namespace(item, gateway_ns, route_ns, namespace_labels)
    ]
    if not allowed:
        return _Attach(False, "NotAllowedByListeners", f"no listener allows {kind} from namespace {route_ns}", [])
    attached: list[tuple[str, tuple[str, ...]]] = []
    route_hosts = list((route.get("spec") or {}).get("hostnames") or [])
    for item in allowed:
        hostnames = intersect_hostnames(item.get("hostname"), route_hosts)
        if hostnames is not None:
            attached.append((item.get("name", ""), tuple(hostnames)))
    if not attached:
        return _Attach(False, "NoMatchingListenerHostname", "no listener hostname intersects the route's", [])
    return _Attach(True, "Accepted", "Route is accepted", attached)


def _is_gateway_ref(ref: dict) -> bool:
    return (ref.get("group") or GATEWAY_GROUP) == GATEWAY_GROUP and (ref.get("kind") or "Gateway") == "Gateway"


def evaluate_route(kind: str, route: dict, world: World, now: str) -> RouteResult:
    """Evaluate one route against ``world``; raises AttributeError/KeyError/TypeError/ValueError when malformed.

    Entries are built only once the whole route compiled, so a bad route never half-programs.
    """
    attachments: list[tuple[str, str, str]] = []
    entries: list[Entry] = []
    parents = _route_parents(kind, route, world, now, attachments, entries)
    return RouteResult(parents, attachments, entries)


def route_dependencies(route: dict) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(Gateways, backend Services) a route names, as (namespace, name); best effort on malformed routes.

    A change to any of them can change the route's status or entries.
    """
    namespace = (route.get("metadata") or {}).get("namespace", "")
    spec = route.get("spec") or {}
    gateways: set[tuple[str, str]] = set()
    services: set[tuple[str, str]] = set()
    try:
        for ref in spec.get("parentRefs") or []:
            if _is_gateway_ref(ref):
                gateways.add((ref.get("namespace") or namespace, ref.get("name", "")))
        for rule in spec.get("rules") or []:
            refs = list(rule.get("backendRefs") or [])
            filters = list(rule.get("filters") or [])
            for ref in refs:
                filters.extend(ref.get("filters") or [])
            refs.extend((item.get("requestMirror") or {}).get("backendRef") or {} for item in filters)
            services.update((ref.get("namespace") or namespace, str(ref.get("name", ""))) for ref in refs)
    except (AttributeError, TypeError):
        # The route's evaluation reports what is malformed; dependencies found so far still apply.
        pass
    return gateways, services


def is_ours(gateway_class: dict, controller_name: str) -> bool:
    """Whether a GatewayClass names our controller (others belong to other controllers)."""
    return (gateway_class.get("spec") or {}).get("controllerName") == controller_name


def class_status(gateway_class: dict, now: str) -> dict:
    """The status of a GatewayClass that names our controller."""
    generation = _meta(gateway_class)[2]
    old = (gateway_class.get("status") or {}).get("conditions") or []
    return {
        "conditions": [
            _condition("Accepted", True, "Accepted", "Handled by the sandbox data plane", generation, now, old),
        ]
    }


def _route_parents(
    kind: str,
    route: dict,
    world: World,
    now: str,
    attachments: list[tuple[str, str, str]],
    entries: list[Entry],
) -> list[dict] | None:
    """The route's full status.parents (other controllers' entries kept), or None if no parentRef is a Gateway."""
    namespace, name, generation = _meta(route)
    key = RouteKey(kind, namespace, name)
    spec = route.get("spec") or {}
    refs = [ref for ref in spec.get("parentRefs") or [] if _is_gateway_ref(ref)]
    if not refs:
        return None
    previous = (route.get("status") or {}).get("parents") or []
    refs = [ref for ref in refs if (ref.get("namespace") or namespace, ref.get("name", "")) not in world.foreign]
    if not refs:
        # Only other controllers' Gateways: leave their entries alone, drop ours if an earlier spec had any.
        if any(p.get("controllerName") == world.controller_name for p in previous):
            return [copy.deepcopy(p) for p in previous if p.get("controllerName") != world.controller_name]
        return None
    try:
        rules, problems = compile_rules(key, spec, world.resolver)
        invalid = None
    except MatchError as exc:
        rules, problems, invalid = [], [], str(exc)
    ours: list[dict] = []
    created = route["metadata"].get("creationTimestamp") or ""
    for ref in refs:
        gateway_key = (ref.get("namespace") or namespace, ref.get("name", ""))
        result = _attach(route, kind, ref, world.gateways.get(gateway_key), world.namespace_labels)
        if invalid is not None and result.accepted:
            result = _Attach(False, "UnsupportedValue", invalid, [])
        old = next(
            (
                p.get("conditions") or []
                for p in previous
                if p.get("controllerName") == world.controller_name and p.get("parentRef") == ref
            ),
            [],
        )
        if problems:
            reason = problems[0].split(":", 1)[0]
            resolved = _condition("ResolvedRefs", False, reason, "; ".join(problems), generation, now, old)
        else:
            resolved = _condition("ResolvedRefs", True, "ResolvedRefs", "All references resolved", generation,
                                  now, old)
        ours.append(
            {
                # Copies: the route may be the store's shared object, and the status must not alias its spec.
                "parentRef": dict(ref),
                "controllerName": world.controller_name,
                "conditions": [
                    _condition("Accepted", result.accepted, result.reason, result.message, generation, now, old),
                    resolved,
                ],
            }
        )
        for listener, hostnames in result.listeners:
            attachments.append((*gateway_key, listener))
            entries.extend(make_entries(rules, gateway_key, hostnames, created))
    others = [copy.deepcopy(p) for p in previous if p.get("controllerName") != world.controller_name]
    return others + ours


def gateway_status(gateway: dict, attached_counts: Mapping[tuple[str, str, str], int], now: str) -> dict:
    """A Gateway's desired status, given how many routes attach to each of its listeners."""
    namespace, name, generation = _meta(gateway)
    previous = gateway.get("status") or {}
    old_listeners = {item.get("name"): item.get("conditions") or [] for item in previous.get("listeners") or []}
    listeners = []
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        listener_name = listener.get("name", "")
        old = old_listeners.get(listener_name, [])
        kinds, kinds_ok = _listener_kinds(listener)
        protocol_ok = listener.get("protocol") in _ROUTE_PROTOCOLS
        accepted_reason = "Accepted" if protocol_ok else "UnsupportedProtocol"
        accepted_message = (
            "Listener is accepted" if protocol_ok else f"protocol {listener.get('protocol')!r} is not simulated"
        )
        listeners.append(
            {
                "name": listener_name,
                "supportedKinds": [{"group": GATEWAY_GROUP, "kind": kind} for kind in kinds],
                "attachedRoutes": attached_counts.get((namespace, name, listener_name), 0),
                "conditions": [
                    _condition("Accepted", protocol_ok, accepted_reason, accepted_message, generation, now, old),
                    _condition(
                        "Programmed",
                        protocol_ok,
                        "Programmed" if protocol_ok else "Invalid",
                        "Listener is programmed" if protocol_ok else accepted_message,
                        generation,
                        now,
                        old,
                    ),
                    _condition(
                        "ResolvedRefs",
                        kinds_ok,
                        "ResolvedRefs" if kinds_ok else "InvalidRouteKinds",
                        "References resolved" if kinds_ok else "allowedRoutes.kinds names unsupported kinds",
                        generation,
                        now,
                        old,
                    ),
                    _condition("Conflicted", False, "NoConflicts", "No conflicts", generation, now, old),
                ],
            }
        )
    old_conditions = previous.get("conditions") or []
    return {
        "addresses": [{"type": "IPAddress", "value": "127.0.0.1"}],
        "conditions": [
            _condition("Accepted", True, "Accepted", "Gateway is accepted", generation, now, old_conditions),
            _condition("Programmed", True, "Programmed", "Gateway is programmed by the sandbox data plane",
                       generation, now, old_conditions),
        ],
        "listeners": listeners,
    }
