"""Request matching as a Gateway user sees it: hostnames, paths, headers, query, and which rule wins."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.gateway.match import (
    MatchError,
    Request,
    compile_grpc_match,
    compile_http_match,
    host_specificity,
    hostname_matches,
    intersect_hostnames,
)
from flaggerpy.sandbox.gateway.table import Resolver, RouteKey, RoutingTable, compile_rules, make_entries


def test_wildcard_hostname_matches_one_or_more_labels_but_not_the_apex() -> None:
    assert hostname_matches("*.example.com", "a.example.com")
    assert hostname_matches("*.example.com", "a.b.example.com")
    assert not hostname_matches("*.example.com", "example.com")
    assert not hostname_matches("app.example.com", "other.example.com")


def test_request_host_port_and_case_are_ignored() -> None:
    assert Request("App.Example.com:8080").normalized_host() == "app.example.com"


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        (None, ["a.example.com"], ["a.example.com"]),
        ("a.example.com", [], ["a.example.com"]),
        ("a.example.com", ["*.example.com"], ["a.example.com"]),
        ("*.example.com", ["a.example.com", "a.example.net"], ["a.example.com"]),
        ("*.example.com", ["*.com"], ["*.example.com"]),
        ("*.example.com", ["*.a.example.com"], ["*.a.example.com"]),
        ("a.example.com", ["b.example.com"], None),
    ],
)
def test_listener_and_route_hostnames_intersect_like_the_spec(listener, route, expected) -> None:
    assert intersect_hostnames(listener, route) == expected


def test_exact_hostname_beats_wildcard() -> None:
    assert host_specificity(("app.example.com",), "app.example.com") > host_specificity(
        ("*.example.com",), "app.example.com"
    )
    assert host_specificity((), "anything") == (0, 0)
    assert host_specificity(("other.com",), "app.example.com") is None


@pytest.mark.parametrize(
    ("path", "matched"),
    [("/api", True), ("/api/", True), ("/api/v1", True), ("/apiv1", False), ("/", False)],
)
def test_path_prefix_matches_whole_path_elements(path: str, matched: bool) -> None:
    match = compile_http_match("m", {"path": {"type": "PathPrefix", "value": "/api/"}})
    assert match.test(Request("h", path)) is matched


def test_query_string_in_path_is_not_part_of_the_path() -> None:
    match = compile_http_match("m", {"path": {"type": "Exact", "value": "/login"}})
    assert match.test(Request("h", "/login?next=/"))


def test_header_names_are_case_insensitive_and_regex_must_match_the_whole_value() -> None:
    match = compile_http_match(
        "m", {"headers": [{"name": "Cookie", "type": "RegularExpression", "value": ".*canary=always.*"}]}
    )
    assert match.test(Request("h", headers={"cookie": "a=1; canary=always; b=2"}))
    assert not match.test(Request("h", headers={"cookie": "canary=never"}))
    assert not match.test(Request("h"))


def test_query_param_and_method_matches() -> None:
    match = compile_http_match("m", {"method": "post", "queryParams": [{"name": "beta", "value": "1"}]})
    assert match.test(Request("h", "/", "POST", query={"beta": "1"}))
    assert not match.test(Request("h", "/", "GET", query={"beta": "1"}))
    assert not match.test(Request("h", "/", "POST", query={"beta": "2"}))


def test_invalid_regex_names_the_field() -> None:
    with pytest.raises(MatchError) as info:
        compile_http_match("spec.rules[0].matches[1]", {"path": {"type": "RegularExpression", "value": "(("}})
    assert info.value.field == "spec.rules[0].matches[1].path.value"


def test_unknown_header_match_type_names_the_field() -> None:
    with pytest.raises(MatchError, match=r"headers\[0\]\.type"):
        compile_http_match("m", {"headers": [{"name": "x", "type": "Prefix", "value": "a"}]})


def test_grpc_method_matches_map_onto_the_http2_path() -> None:
    both = compile_grpc_match("m", {"method": {"service": "pkg.Greeter", "method": "Hello"}})
    service_only = compile_grpc_match("m", {"method": {"service": "pkg.Greeter"}})
    method_only = compile_grpc_match("m", {"method": {"method": "Hello"}})
    assert both.test(Request("h", "/pkg.Greeter/Hello", "POST"))
    assert not both.test(Request("h", "/pkg.Greeter/Bye", "POST"))
    assert service_only.test(Request("h", "/pkg.Greeter/Bye", "POST"))
    assert method_only.test(Request("h", "/other.Svc/Hello", "POST"))


def _table(*routes: tuple[str, dict, str]) -> RoutingTable:
    resolver = Resolver({("test", "a"), ("test", "b"), ("test", "c")}, [])
    entries = []
    for name, spec, created in routes:
        key = RouteKey("HTTPRoute", "test", name)
        rules, _ = compile_rules(key, spec, resolver)
        entries += make_entries(rules, ("infra", "gw"), tuple(spec.get("hostnames", [])), created)
    return RoutingTable(entries)


def _rule(backend: str, **match: object) -> dict:
    return {"matches": [match] if match else [], "backendRefs": [{"name": backend, "port": 80}]}


def _winner(table: RoutingTable, request: Request) -> str:
    rule = table.select(request)
    assert rule is not None
    return rule.backends[0].ref.name


def test_precedence_exact_then_longest_prefix_then_method_headers_query() -> None:
    spec = {
        "rules": [
            _rule("a", path={"type": "PathPrefix", "value": "/"}),
            _rule("b", path={"type": "PathPrefix", "value": "/shop"}),
            _rule("c", path={"type": "Exact", "value": "/shop/cart"}),
        ]
    }
    table = _table(("r", spec, "t1"))
    assert _winner(table, Request("h", "/shop/cart")) == "c"
    assert _winner(table, Request("h", "/shop/items")) == "b"
    assert _winner(table, Request("h", "/home")) == "a"

    spec = {
        "rules": [
            _rule("a"),
            _rule("b", headers=[{"name": "x-canary", "value": "insider"}]),
            _rule("c", headers=[{"name": "x-canary", "value": "insider"}, {"name": "x-beta", "value": "1"}]),
        ]
    }
    table = _table(("r", spec, "t1"))
    assert _winner(table, Request("h", headers={"X-Canary": "insider", "x-beta": "1"})) == "c"
    assert _winner(table, Request("h", headers={"X-Canary": "insider"})) == "b"
    assert _winner(table, Request("h")) == "a"

    spec = {"rules": [_rule("a", queryParams=[{"name": "q", "value": "1"}]), _rule("b", method="GET")]}
    assert _winner(_table(("r", spec, "t1")), Request("h", query={"q": "1"})) == "b"


def test_ties_go_to_the_oldest_route_then_the_first_rule() -> None:
    old = {"rules": [_rule("a")]}
    new = {"rules": [_rule("b"), _rule("c")]}
    assert _winner(_table(("newer", new, "t2"), ("older", old, "t1")), Request("h")) == "a"
    assert _winner(_table(("only", new, "t1")), Request("h")) == "b"


def test_more_specific_hostname_wins_over_path_precedence() -> None:
    wildcard = {"hostnames": ["*.example.com"], "rules": [_rule("a", path={"type": "Exact", "value": "/x"})]}
    exact = {"hostnames": ["app.example.com"], "rules": [_rule("b")]}
    table = _table(("w", wildcard, "t1"), ("e", exact, "t2"))
    assert _winner(table, Request("app.example.com", "/x")) == "b"
    assert _winner(table, Request("other.example.com", "/x")) == "a"
    assert table.select(Request("example.org", "/x")) is None
