"""Programming the Gateways: which routes attach where, the status a conformant controller reports, and the table.

Everything here is a pure function of one snapshot of the cluster, so the data plane can rebuild it on every
relevant change and write only the statuses that differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flaggerpy.sandbox.dataplane_match import MatchError, intersect_hostnames
from flaggerpy.sandbox.dataplane_table import (
    GRPCROUTE,
    HTTPROUTE,
    Entry,
    Resolver,
    RouteKey,
    RoutingTable,
    compile_rules,
    make_entries,
)

GATEWAY_GROUP = "gateway.networking.k8s.io"
_ROUTE_PROTOCOLS = {"HTTP": (HTTPROUTE, GRPCROUTE), "HTTPS": (HTTPROUTE, GRPCROUTE)}


@dataclass(slots=True)
class Snapshot:
    """The objects the data plane reads, as plain dicts."""

    gateways: list[dict] = field(default_factory=list)
    gatewayclasses: list[dict] = field(default_factory=list)
    httproutes: list[dict] = field(default_factory=list)
    grpcroutes: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    namespaces: list[dict] = field(default_factory=list)
    referencegrants: list[dict] = field(default_factory=list)


@dataclass(slots=True)
class Program:
    """The desired statuses, keyed by (namespace, name) or RouteKey, and the routing table built alongside."""

    gateway_status: dict[tuple[str, str], dict]
    route_parents: dict[RouteKey, list[dict]]
    table: RoutingTable
    # GatewayClasses naming our controller: name → status (others belong to other controllers).
    class_status: dict[str, dict] = field(default_factory=dict)
    # Objects too malformed to program ("kind namespace/name: problem"); the rest of the cluster still is.
    errors: list[str] = field(default_factory=list)


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


def _allows_namespace(listener: dict, gateway_ns: str, route_ns: str, namespace_labels: dict[str, dict]) -> bool:
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


def _attach(route: dict, kind: str, ref: dict, gateway: dict | None, namespace_labels: dict[str, dict]) -> _Attach:
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


def build_program(snapshot: Snapshot, controller_name: str, now: str) -> Program:
    """Compute every Gateway's and route's desired status and the routing table from ``snapshot``."""
    gateways = {(_meta(g)[0], _meta(g)[1]): g for g in snapshot.gateways}
    namespace_labels = {
        (ns.get("metadata") or {}).get("name", ""): (ns.get("metadata") or {}).get("labels") or {}
        for ns in snapshot.namespaces
    }
    resolver = Resolver({(_meta(s)[0], _meta(s)[1]) for s in snapshot.services}, snapshot.referencegrants)
    attached_counts: dict[tuple[str, str, str], int] = {}
    route_parents: dict[RouteKey, list[dict]] = {}
    entries: list[Entry] = []
    errors: list[str] = []
    for kind, routes in ((HTTPROUTE, snapshot.httproutes), (GRPCROUTE, snapshot.grpcroutes)):
        for route in routes:
            # Entries are only kept when the whole route compiled, so a bad one never half-programs.
            route_entries: list[Entry] = []
            counts = dict(attached_counts)
            try:
                parents = _route_parents(
                    kind, route, gateways, namespace_labels, resolver, controller_name, now, counts, route_entries
                )
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                errors.append(f"{kind} {'/'.join(_meta(route)[:2])}: cannot be read ({exc!r})")
                continue
            attached_counts.update(counts)
            entries.extend(route_entries)
            if parents is not None:
                route_parents[RouteKey(kind, *_meta(route)[:2])] = parents
    gateway_status: dict[tuple[str, str], dict] = {}
    for key, gateway in gateways.items():
        try:
            gateway_status[key] = _gateway_status(gateway, attached_counts, now)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            errors.append(f"Gateway {key[0]}/{key[1]}: cannot be read ({exc!r})")
    class_status = {
        _meta(item)[1]: _class_status(item, now)
        for item in snapshot.gatewayclasses
        if (item.get("spec") or {}).get("controllerName") == controller_name
    }
    return Program(gateway_status, route_parents, RoutingTable(entries), class_status, errors)


def _class_status(gateway_class: dict, now: str) -> dict:
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
    gateways: dict[tuple[str, str], dict],
    namespace_labels: dict[str, dict],
    resolver: Resolver,
    controller_name: str,
    now: str,
    attached_counts: dict[tuple[str, str, str], int],
    entries: list[Entry],
) -> list[dict] | None:
    """The route's full status.parents (other controllers' entries kept), or None if no parentRef is a Gateway."""
    namespace, name, generation = _meta(route)
    key = RouteKey(kind, namespace, name)
    spec = route.get("spec") or {}
    refs = [ref for ref in spec.get("parentRefs") or [] if _is_gateway_ref(ref)]
    if not refs:
        return None
    try:
        rules, problems = compile_rules(key, spec, resolver)
        invalid = None
    except MatchError as exc:
        rules, problems, invalid = [], [], str(exc)
    previous = (route.get("status") or {}).get("parents") or []
    ours: list[dict] = []
    created = route["metadata"].get("creationTimestamp") or ""
    for ref in refs:
        gateway_key = (ref.get("namespace") or namespace, ref.get("name", ""))
        result = _attach(route, kind, ref, gateways.get(gateway_key), namespace_labels)
        if invalid is not None and result.accepted:
            result = _Attach(False, "UnsupportedValue", invalid, [])
        old = next(
            (
                p.get("conditions") or []
                for p in previous
                if p.get("controllerName") == controller_name and p.get("parentRef") == ref
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
                "parentRef": ref,
                "controllerName": controller_name,
                "conditions": [
                    _condition("Accepted", result.accepted, result.reason, result.message, generation, now, old),
                    resolved,
                ],
            }
        )
        for listener, hostnames in result.listeners:
            count_key = (*gateway_key, listener)
            attached_counts[count_key] = attached_counts.get(count_key, 0) + 1
            entries.extend(make_entries(rules, gateway_key, hostnames, created))
    others = [p for p in previous if p.get("controllerName") != controller_name]
    return others + ours


def _gateway_status(gateway: dict, attached_counts: dict[tuple[str, str, str], int], now: str) -> dict:
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
