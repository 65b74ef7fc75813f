"""The compiled routing table: attached route rules in precedence order, and the choice of one for a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from flaggerpy.sandbox.gateway.match import (
    MatchError,
    Request,
    RouteMatch,
    compile_grpc_match,
    compile_http_match,
    host_specificity,
    hostname_matches,
)

HTTPROUTE = "HTTPRoute"
GRPCROUTE = "GRPCRoute"
_HOST_CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True, order=True)
class RouteKey:
    """Identifies a route object: kind, namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class ServiceRef:
    """A backend Service and the service port a backendRef names (None when the ref has no port)."""

    namespace: str
    name: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """A ResponseHeaderModifier (or RequestHeaderModifier) filter: set, add, remove."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: list[tuple[str, str]]) -> None:
        """Edit ``headers`` in place; names compare case-insensitively like HTTP header names."""
        dropped = {name.lower() for name in self.remove} | {name.lower() for name, _ in self.set}
        headers[:] = [(name, value) for name, value in headers if name.lower() not in dropped]
        headers.extend(self.set)
        headers.extend(self.add)


@dataclass(frozen=True, slots=True)
class Mirror:
    """A RequestMirror filter: copy ``numerator/denominator`` of the requests to ``target``."""

    target: ServiceRef
    resolved: bool
    numerator: int = 100
    denominator: int = 100


@dataclass(frozen=True, slots=True)
class Backend:
    """A weighted backendRef; ``resolved`` is False when its Service is missing or not allowed."""

    ref: ServiceRef
    weight: int
    resolved: bool
    response_edits: tuple[HeaderEdits, ...] = ()
    mirrors: tuple[Mirror, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A route rule: its backends (in spec order), and the rule-level response edits and mirrors."""

    route: RouteKey
    index: int
    backends: tuple[Backend, ...]
    response_edits: tuple[HeaderEdits, ...] = ()
    mirrors: tuple[Mirror, ...] = ()
    total_weight: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_weight", sum(backend.weight for backend in self.backends))


@dataclass(frozen=True, slots=True)
class Entry:
    """One (match, rule) pair of an attached route, served on ``gateway`` for ``hostnames``."""

    gateway: tuple[str, str]
    hostnames: tuple[str, ...]
    match: RouteMatch
    rule: Rule
    order: tuple  # static precedence after hostnames: match precedence, route age, name, rule and match index


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the Gateway sends a request: a backend, or an answer of its own (``status``: 404/500)."""

    rule: Rule | None
    backend: Backend | None
    status: int | None
    headers: list[tuple[str, str]]
    mirrors: list[ServiceRef] = field(default_factory=list)


class RoutingTable:
    """All attached rules; ``select`` finds the rule a request takes, honouring Gateway API precedence.

    Entries are indexed by the hostname they serve (a name, a ``*.`` wildcard, or "" for any host), and ``replace``
    swaps one route's entries, so a change to one route costs work proportional to that route, not to the table.
    """

    def __init__(self, entries: list[Entry] | None = None) -> None:
        self._by_route: dict[RouteKey, list[Entry]] = {}
        self._by_pattern: dict[str, dict[RouteKey, list[Entry]]] = {}
        self._by_host: dict[str, dict[tuple[str, str] | None, list[Entry]]] = {}
        grouped: dict[RouteKey, list[Entry]] = {}
        for entry in entries or []:
            grouped.setdefault(entry.rule.route, []).append(entry)
        for route, route_entries in grouped.items():
            self.replace(route, route_entries)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_route.values())

    def replace(self, route: RouteKey, entries: list[Entry]) -> None:
        """Program ``entries`` for ``route`` in place of what it had (an empty list removes the route)."""
        touched: set[str] = set()
        for entry in self._by_route.pop(route, []):
            for pattern in entry.hostnames or ("",):
                bucket = self._by_pattern.get(pattern)
                if bucket is not None and bucket.pop(route, None) is not None:
                    touched.add(pattern)
                    if not bucket:
                        del self._by_pattern[pattern]
        if entries:
            self._by_route[route] = list(entries)
            for entry in entries:
                for pattern in entry.hostnames or ("",):
                    self._by_pattern.setdefault(pattern, {}).setdefault(route, []).append(entry)
                    touched.add(pattern)
        self._forget(touched)

    def _forget(self, patterns: set[str]) -> None:
        """Drop the cached candidates of every host the changed hostname patterns can serve."""
        if not patterns or not self._by_host:
            return
        if "" in patterns:
            self._by_host.clear()
            return
        for pattern in patterns:
            if pattern.startswith("*."):
                for host in [host for host in self._by_host if hostname_matches(pattern, host)]:
                    del self._by_host[host]
            else:
                self._by_host.pop(pattern, None)

    def select(self, request: Request, gateway: tuple[str, str] | None = None) -> Rule | None:
        """The rule serving ``request`` (entering through ``gateway``, or any Gateway when None), or None."""
        for entry in self._candidates(request.normalized_host(), gateway):
            if entry.match.test(request):
                return entry.rule
        return None

    def _candidates(self, host: str, gateway: tuple[str, str] | None) -> list[Entry]:
        # Host precedence is the only request-dependent part of the order, so the sorted candidate list is
        # computed once per host and reused until a route serving that host changes.
        per_gateway = self._by_host.get(host)
        cached = per_gateway.get(gateway) if per_gateway is not None else None
        if cached is not None:
            return cached
        patterns = [host, ""]
        labels = host.split(".")
        patterns += ["*." + ".".join(labels[index:]) for index in range(1, len(labels))]
        seen: set[int] = set()
        scored: list[tuple[tuple[int, int], tuple, Entry]] = []
        for pattern in patterns:
            for route_entries in self._by_pattern.get(pattern, {}).values():
                for entry in route_entries:
                    if id(entry) in seen or (gateway is not None and entry.gateway != gateway):
                        continue
                    seen.add(id(entry))
                    score = host_specificity(entry.hostnames, host)
                    if score is not None:
                        scored.append(((-score[0], -score[1]), entry.order, entry))
        scored.sort(key=lambda item: (item[0], item[1]))
        result = [entry for _, _, entry in scored]
        if len(self._by_host) >= _HOST_CACHE_LIMIT:
            self._by_host.clear()
        self._by_host.setdefault(host, {})[gateway] = result
        return result


def _header_edits(spec: dict | None) -> HeaderEdits:
    spec = spec or {}

    def pairs(items: list[dict] | None) -> tuple[tuple[str, str], ...]:
        return tuple((str(item.get("name", "")), str(item.get("value", ""))) for item in items or [])

    return HeaderEdits(pairs(spec.get("set")), pairs(spec.get("add")), tuple(spec.get("remove") or []))


def _service_ref(ref: dict, route_namespace: str) -> ServiceRef:
    port = ref.get("port")
    return ServiceRef(ref.get("namespace") or route_namespace, str(ref.get("name", "")), port)


class Resolver:
    """Answers whether a route may use a backend: a Service, existing, and same-namespace or granted."""

    def __init__(self, services: set[tuple[str, str]], grants: list[dict]) -> None:
        self._services = services
        self._grants = grants

    def problem(self, route: RouteKey, ref: dict) -> tuple[str, str] | None:
        """None when ``ref`` resolves, else (ResolvedRefs reason, message)."""
        group = ref.get("group") or ""
        kind = ref.get("kind") or "Service"
        name = ref.get("name", "")
        namespace = ref.get("namespace") or route.namespace
        if group != "" or kind != "Service":
            return "InvalidKind", f"backendRef {name}: kind {group or 'core'}/{kind} is not supported (Service)"
        if namespace != route.namespace and not self._granted(route, namespace, name):
            return "RefNotPermitted", f"backendRef {namespace}/{name}: no ReferenceGrant allows it"
        if (namespace, name) not in self._services:
            return "BackendNotFound", f"backendRef {namespace}/{name}: Service not found"
        return None

    def _granted(self, route: RouteKey, namespace: str, name: str) -> bool:
        for grant in self._grants:
            if grant.get("metadata", {}).get("namespace") != namespace:
                continue
            spec = grant.get("spec") or {}
            from_ok = any(
                item.get("group") == "gateway.networking.k8s.io"
                and item.get("kind") == route.kind
                and item.get("namespace") == route.namespace
                for item in spec.get("from") or []
            )
            to_ok = any(
                (item.get("group") or "") == ""
                and item.get("kind") == "Service"
                and item.get("name") in (None, "", name)
                for item in spec.get("to") or []
            )
            if from_ok and to_ok:
                return True
        return False


def _filters(filters: list[dict] | None, route: RouteKey, resolver: Resolver) -> tuple[
    tuple[HeaderEdits, ...], tuple[Mirror, ...]
]:
    edits: list[HeaderEdits] = []
    mirrors: list[Mirror] = []
    for item in filters or []:
        kind = item.get("type")
        if kind == "ResponseHeaderModifier":
            edits.append(_header_edits(item.get("responseHeaderModifier")))
        elif kind == "RequestMirror":
            spec = item.get("requestMirror") or {}
            ref = spec.get("backendRef") or {}
            numerator, denominator = 100, 100
            if spec.get("fraction"):
                numerator = int(spec["fraction"].get("numerator", 0))
                denominator = int(spec["fraction"].get("denominator") or 100)
            elif spec.get("percent") is not None:
                numerator = int(spec["percent"])
            mirrors.append(
                Mirror(
                    _service_ref(ref, route.namespace),
                    resolver.problem(route, ref) is None,
                    numerator,
                    denominator,
                )
            )
    return tuple(edits), tuple(mirrors)


def compile_rules(route: RouteKey, spec: dict, resolver: Resolver) -> tuple[list[tuple[Rule, list[RouteMatch]]],
                                                                        list[str]]:
    """Compile a route's rules and matches; raises MatchError naming the first invalid field.

    Also returns the ResolvedRefs problems ("reason: message") of its backends, for the route's status.
    """
    compile_match = compile_grpc_match if route.kind == GRPCROUTE else compile_http_match
    compiled: list[tuple[Rule, list[RouteMatch]]] = []
    problems: list[str] = []
    for rule_index, rule in enumerate(spec.get("rules") or [{}]):
        where = f"spec.rules[{rule_index}]"
        matches = [
            compile_match(f"{where}.matches[{index}]", match)
            for index, match in enumerate(rule.get("matches") or [])
        ] or [RouteMatch()]
        backends: list[Backend] = []
        for ref in rule.get("backendRefs") or []:
            problem = resolver.problem(route, ref)
            if problem is not None:
                problems.append(f"{problem[0]}: {problem[1]}")
            weight = ref.get("weight", 1)
            if not isinstance(weight, int) or weight < 0:
                raise MatchError(f"{where}.backendRefs.weight", f"{weight!r} must be an integer >= 0")
            edits, mirrors = _filters(ref.get("filters"), route, resolver)
            backends.append(Backend(_service_ref(ref, route.namespace), weight, problem is None, edits, mirrors))
        edits, mirrors = _filters(rule.get("filters"), route, resolver)
        problems.extend(
            f"BackendNotFound: mirror backend {m.target.namespace}/{m.target.name} does not resolve"
            for m in mirrors
            if not m.resolved
        )
        compiled.append((Rule(route, rule_index, tuple(backends), edits, mirrors), matches))
    return compiled, problems


def make_entries(
    rules: list[tuple[Rule, list[RouteMatch]]],
    gateway: tuple[str, str],
    hostnames: tuple[str, ...],
    created: str,
) -> list[Entry]:
    """Entries for one attachment of a compiled route, with their static precedence keys."""
    entries: list[Entry] = []
    for rule, matches in rules:
        for match_index, match in enumerate(matches):
            order = (
                match.precedence(),
                created,
                f"{rule.route.namespace}/{rule.route.name}",
                rule.index,
                match_index,
            )
            entries.append(Entry(gateway, hostnames, match, rule, order))
    return entries


@dataclass(frozen=True, slots=True)
class Response:
    """The outcome of one synthetic request."""

    status: int
    latency_ms: float
    backend: ServiceRef | None
    route: RouteKey | None
    rule: int | None
    workload: str | None
    headers: tuple[tuple[str, str], ...] = ()
    mirrored_to: tuple[ServiceRef, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of response header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


__all__ = [
    "GRPCROUTE",
    "HTTPROUTE",
    "Backend",
    "Decision",
    "Entry",
    "HeaderEdits",
    "MatchError",
    "Mirror",
    "Resolver",
    "Response",
    "RouteKey",
    "RoutingTable",
    "Rule",
    "ServiceRef",
    "compile_rules",
    "make_entries",
]
