"""Request matching for the simulated Gateway: hostnames, paths, methods, headers and query parameters.

Semantics follow the Gateway API HTTPRoute/GRPCRoute specification (v1.6.1). Where the specification leaves a
choice to the implementation we pick what Envoy-based Gateways do and say so next to the code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

PATH_EXACT = "Exact"
PATH_PREFIX = "PathPrefix"
PATH_REGEX = "RegularExpression"
VALUE_EXACT = "Exact"
VALUE_REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True)
class Request:
    """A synthetic HTTP request as a client would send it to a Gateway.

    ``host`` may carry a port (ignored, as the spec requires). Header names are case-insensitive; query parameter
    names are case-sensitive, as in the spec.
    """

    host: str
    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def normalized_host(self) -> str:
        """The host without port and trailing dot, lower-cased."""
        host = self.host.strip().lower()
        if host.startswith("["):
            return host.split("]", 1)[0] + "]"
        return host.split(":", 1)[0].rstrip(".")

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


def hostname_matches(pattern: str, host: str) -> bool:
    """True when ``host`` matches ``pattern``; ``*.example.com`` matches one or more labels before the suffix."""
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return pattern == host


def intersect_hostnames(listener_hostname: str | None, route_hostnames: list[str]) -> list[str] | None:
    """The hostnames a route serves on a listener, or None when they do not intersect.

    An empty list means "any host". A listener wildcard narrows a route wildcard and vice versa, so the result
    is always the more specific of each intersecting pair.
    """
    if not listener_hostname:
        return list(route_hostnames)
    if not route_hostnames:
        return [listener_hostname]
    result: list[str] = []
    for hostname in route_hostnames:
        if hostname_matches(listener_hostname, hostname) or hostname == listener_hostname:
            result.append(hostname)
        elif hostname.startswith("*.") and hostname_matches(hostname, listener_hostname):
            result.append(listener_hostname)
    return result or None


def host_specificity(hostnames: tuple[str, ...], host: str) -> tuple[int, int] | None:
    """How specifically ``hostnames`` match ``host``: (chars of a non-wildcard match, chars of any match).

    None when no hostname matches; (0, 0) when the route accepts any host. Routes with the larger value take
    precedence, as the spec orders routes by their matching hostname's characters.
    """
    if not hostnames:
        return (0, 0)
    best: tuple[int, int] | None = None
    for pattern in hostnames:
        if hostname_matches(pattern, host):
            score = (0, len(pattern)) if pattern.startswith("*.") else (len(pattern), len(pattern))
            if best is None or score > best:
                best = score
    return best


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """One header or query-parameter predicate."""

    name: str
    value: str
    regex: re.Pattern[str] | None = None

    def test(self, actual: str | None) -> bool:
        """True when ``actual`` satisfies this predicate; an absent value never matches."""
        if actual is None:
            return False
        if self.regex is not None:
            # Envoy evaluates RE2 regexes against the whole value; fullmatch keeps Flagger's `.*name=value.*`
            # cookie patterns meaning what they mean on a real Gateway.
            return self.regex.fullmatch(actual) is not None
        return actual == self.value


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A compiled HTTPRouteMatch (or GRPCRouteMatch mapped onto its HTTP/2 path)."""

    path_type: str = PATH_PREFIX
    path_value: str = "/"
    path_regex: re.Pattern[str] | None = None
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()

    def precedence(self) -> tuple[int, ...]:
        """Sort key, smaller first: Exact path, then regex, then longest prefix, method, headers, query.

        The spec leaves regex precedence to implementations; like Envoy Gateway we place it between Exact and
        PathPrefix matches.
        """
        exact = self.path_type == PATH_EXACT
        regex = self.path_type == PATH_REGEX
        prefix_len = len(self.path_value) if self.path_type == PATH_PREFIX else 0
        return (
            -int(exact),
            -int(regex),
            -prefix_len,
            -int(self.method is not None),
            -len(self.headers),
            -len(self.query),
        )

    def test(self, request: Request) -> bool:
        """True when every predicate of this match holds for ``request``."""
        path = request.path.split("?", 1)[0] or "/"
        if not _path_matches(self.path_type, self.path_value, self.path_regex, path):
            return False
        if self.method is not None and request.method.upper() != self.method:
            return False
        for header in self.headers:
            if not header.test(request.header(header.name)):
                return False
        return all(param.test(request.query.get(param.name)) for param in self.query)


def _path_matches(path_type: str, value: str, regex: re.Pattern[str] | None, path: str) -> bool:
    if path_type == PATH_EXACT:
        return path == value
    if path_type == PATH_REGEX:
        return regex is not None and regex.fullmatch(path) is not None
    # PathPrefix matches whole path elements: "/abc" matches "/abc", "/abc/" and "/abc/x" but not "/abcd".
    prefix = value.rstrip("/")
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")


class MatchError(ValueError):
    """A route match that cannot be compiled; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def compile_regex(field: str, pattern: str) -> re.Pattern[str]:
    """Compile a user's regular expression or raise MatchError naming the field."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise MatchError(field, f"invalid regular expression {pattern!r}: {exc}") from exc


def _value_matches(field: str, items: list[dict] | None) -> tuple[ValueMatch, ...]:
    compiled: list[ValueMatch] = []
    for index, item in enumerate(items or []):
        name = str(item.get("name", ""))
        value = str(item.get("value", ""))
        kind = item.get("type") or VALUE_EXACT
        where = f"{field}[{index}]"
        if not name:
            raise MatchError(f"{where}.name", "must not be empty")
        if kind == VALUE_REGEX:
            compiled.append(ValueMatch(name, value, compile_regex(f"{where}.value", value)))
        elif kind == VALUE_EXACT:
            compiled.append(ValueMatch(name, value))
        else:
            raise MatchError(f"{where}.type", f"unsupported value {kind!r} (Exact, RegularExpression)")
    return tuple(compiled)


def compile_http_match(field: str, match: dict) -> RouteMatch:
    """Compile one HTTPRouteMatch dict; ``field`` is its location, used in errors."""
    path = match.get("path") or {}
    path_type = path.get("type") or PATH_PREFIX
    path_value = path.get("value")
    if path_value is None:
        path_value = "/"
    regex = None
    if path_type == PATH_REGEX:
        regex = compile_regex(f"{field}.path.value", path_value)
    elif path_type not in (PATH_EXACT, PATH_PREFIX):
        raise MatchError(f"{field}.path.type", f"unsupported value {path_type!r}")
    elif not path_value.startswith("/"):
        raise MatchError(f"{field}.path.value", "must start with '/'")
    method = match.get("method")
    return RouteMatch(
        path_type=path_type,
        path_value=path_value,
        path_regex=regex,
        method=method.upper() if method else None,
        headers=_value_matches(f"{field}.headers", match.get("headers")),
        query=_value_matches(f"{field}.queryParams", match.get("queryParams")),
    )


def compile_grpc_match(field: str, match: dict) -> RouteMatch:
    """Compile one GRPCRouteMatch dict onto the HTTP/2 ``:path`` of a gRPC call (``/<service>/<method>``)."""
    method = match.get("method") or {}
    service = method.get("service") or ""
    name = method.get("method") or ""
    headers = _value_matches(f"{field}.headers", match.get("headers"))
    kind = method.get("type") or VALUE_EXACT
    if kind == VALUE_REGEX:
        pattern = f"/{service or '[^/]+'}/{name or '[^/]+'}"
        return RouteMatch(PATH_REGEX, pattern, compile_regex(f"{field}.method", pattern), None, headers)
    if kind != VALUE_EXACT:
        raise MatchError(f"{field}.method.type", f"unsupported value {kind!r} (Exact, RegularExpression)")
    if service and name:
        return RouteMatch(PATH_EXACT, f"/{service}/{name}", None, None, headers)
    if service:
        return RouteMatch(PATH_PREFIX, f"/{service}", None, None, headers)
    if name:
        pattern = f"/[^/]+/{re.escape(name)}"
        return RouteMatch(PATH_REGEX, pattern, re.compile(pattern), None, headers)
    return RouteMatch(headers=headers)
