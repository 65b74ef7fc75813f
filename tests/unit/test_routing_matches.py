"""Istio match requests → Gateway API matches, and the field-naming errors for what Gateway API cannot express."""

from __future__ import annotations

from typing import Any

import pytest

from flaggerpy.apis.errors import FieldError
from flaggerpy.routing.filters import cors_filter, duration_seconds, rule_retry
from flaggerpy.routing.matches import grpc_matches, http_matches, merge_matches


def convert(requests: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    errors: list[FieldError] = []
    out = http_matches(requests, "spec.service.match", errors)
    return out, [str(e) for e in errors]


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ({"exact": "/health"}, {"type": "Exact", "value": "/health"}),
        ({"prefix": "/api"}, {"type": "PathPrefix", "value": "/api"}),
        ({"regex": "/v[0-9]+/.*"}, {"type": "RegularExpression", "value": "/v[0-9]+/.*"}),
        ({"suffix": ".json"}, {"type": "RegularExpression", "value": r".*\.json$"}),
    ],
)
def test_uri_kinds_map_to_path_match_types(uri: dict[str, str], path: dict[str, str]) -> None:
    assert convert([{"uri": uri}]) == ([{"path": path}], [])


def test_ignore_uri_case_uses_a_case_insensitive_regex() -> None:
    out, errors = convert([{"uri": {"prefix": "/API"}, "ignoreUriCase": True}])
    assert errors == []
    assert out == [{"path": {"type": "RegularExpression", "value": "(?i)/API.*"}}]


def test_headers_query_params_and_method() -> None:
    out, errors = convert(
        [
            {
                "method": {"exact": "get"},
                "headers": {"x-user": {"prefix": "beta-"}, "x-canary": {"exact": "insider"}, "x-any": {}},
                "queryParams": {"version": {"regex": "v2.*"}},
            }
        ]
    )
    assert errors == []
    assert out == [
        {
            "method": "GET",
            "headers": [
                {"name": "x-any", "type": "RegularExpression", "value": ".*"},
                {"name": "x-canary", "type": "Exact", "value": "insider"},
                {"name": "x-user", "type": "RegularExpression", "value": "^beta\\-.*"},
            ],
            "queryParams": [{"name": "version", "type": "RegularExpression", "value": "v2.*"}],
        }
    ]


def test_unsupported_istio_fields_are_named() -> None:
    _, errors = convert(
        [
            {"uri": {"prefix": "/"}},
            {
                "authority": {"exact": "a.example.com"},
                "withoutHeaders": {"x": {"exact": "1"}},
                "method": {"regex": "G.*"},
            },
        ]
    )
    assert "spec.service.match[1].authority: is not supported by Gateway API routes" in errors
    assert "spec.service.match[1].withoutHeaders: is not supported by Gateway API routes" in errors
    assert any(e.startswith("spec.service.match[1].method: must be an exact match") for e in errors)


def test_relative_path_and_two_kinds_are_rejected() -> None:
    _, errors = convert([{"uri": {"exact": "health"}}, {"uri": {"exact": "/a", "prefix": "/b"}}])
    assert errors == [
        'spec.service.match[0].uri.exact: "health" must be an absolute path starting with "/"',
        "spec.service.match[1].uri: needs exactly one of exact, prefix, suffix, regex",
    ]


def test_junk_never_raises_anything_but_collects_errors() -> None:
    for junk in (None, 3, "x", [1], {"uri": "x"}, {"headers": ["a"]}, {"queryParams": {"a": 1}}):
        errors: list[FieldError] = []
        http_matches([junk], "m", errors)
        grpc_matches([junk], "m", errors)


def test_grpc_keeps_only_header_matches() -> None:
    errors: list[FieldError] = []
    out = grpc_matches([{"headers": {"X-Tenant": {"exact": "a"}}}, {"uri": {"prefix": "/x"}}], "f", errors)
    assert out == [{"headers": [{"name": "x-tenant", "type": "Exact", "value": "a"}]}]
    assert [str(e) for e in errors] == ["f[1].uri: is not supported for gRPC routes (only headers)"]


def test_merge_is_every_combination_and_analysis_wins_on_the_same_header() -> None:
    service = [
        {"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-a", "type": "Exact", "value": "s"}]}
    ]
    analysis = [
        {"headers": [{"name": "X-A", "type": "Exact", "value": "a"}]},
        {"queryParams": [{"name": "q", "type": "Exact", "value": "1"}]},
    ]
    merged = merge_matches(analysis, service)
    assert merged == [
        {"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "X-A", "type": "Exact", "value": "a"}]},
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [{"name": "x-a", "type": "Exact", "value": "s"}],
            "queryParams": [{"name": "q", "type": "Exact", "value": "1"}],
        },
    ]
    assert merge_matches([], service) == service
    assert merge_matches(analysis, []) == analysis


@pytest.mark.parametrize(("text", "seconds"), [("1m30s", 90.0), ("500ms", 0.5), ("24h", 86400.0), ("1x", None)])
def test_durations(text: str, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def test_cors_regex_origins_are_rejected_by_field() -> None:
    errors: list[FieldError] = []
    cors_filter({"allowOrigins": [{"regex": ".*"}], "allowMethods": ["FETCH"]}, errors)
    assert [e.field for e in errors] == [
        "spec.service.corsPolicy.allowOrigins[0]",
        "spec.service.corsPolicy.allowMethods",
    ]


def test_retry_codes_from_retry_on() -> None:
    errors: list[FieldError] = []
    assert rule_retry({"attempts": 2, "retryOn": "5xx,reset"}, errors) == {
        "attempts": 2,
        "codes": [500, 501, 502, 503, 504],
    }
    assert errors == []
