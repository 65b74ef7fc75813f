"""The routes the router builds, for every strategy, validated against the official Gateway API v1.6.1 CRDs."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary
from flaggerpy.routing.build import (
    STANDARD_V1_6,
    RouteFeatures,
    RouteWeights,
    desired_route,
    route_kind,
)
from flaggerpy.routing.errors import InvalidWeights
from tests.paths import GATEWAY_API_CRDS, REPO_ROOT

CRDS = GATEWAY_API_CRDS
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "flagger"
pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"Gateway API CRDs not found at {CRDS}")


@cache
def _schema(kind: str, version: str) -> dict[str, Any]:
    plural = {"HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes"}[kind]
    crd = yaml.safe_load((CRDS / f"gateway.networking.k8s.io_{plural}.yaml").read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]
    raise AssertionError(f"{kind} {version} is not served by the CRD")


def _cel_problems(spec: dict[str, Any]) -> list[str]:
    """The CRD's CEL rules that jsonschema cannot evaluate, for the fields the router writes."""
    problems = []
    for i, rule in enumerate(spec.get("rules", [])):
        lists = [rule.get("filters", [])] + [b.get("filters", []) for b in rule.get("backendRefs", [])]
        for filters in lists:
            kinds = [f["type"] for f in filters]
            for unique in ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite"):
                if kinds.count(unique) > 1:
                    problems.append(f"rules[{i}]: {unique} repeated")
            for f in filters:
                key = f["type"][0].lower() + f["type"][1:]
                key = {"uRLRewrite": "urlRewrite", "cORS": "cors"}.get(key, key)
                if key not in f:
                    problems.append(f"rules[{i}]: filter {f['type']} without its {key} field")
                rewrite = f.get("urlRewrite", {}).get("path", {})
                if rewrite.get("type") == "ReplacePrefixMatch":
                    matches = rule.get("matches", [])
                    if len(matches) != 1 or matches[0].get("path", {}).get("type") != "PathPrefix":
                        problems.append(f"rules[{i}]: ReplacePrefixMatch without exactly one PathPrefix match")
        for b in rule.get("backendRefs", []):
            if b.get("group", "") == "" and b.get("kind", "Service") == "Service" and "port" not in b:
                problems.append(f"rules[{i}]: Service backend without port")
    if sum(len(r.get("matches", [])) for r in spec.get("rules", [])) > 128:
        problems.append("more than 128 matches")
    return problems


def assert_valid(route: dict[str, Any]) -> None:
    """The route passes the CRD's OpenAPI schema and the CEL rules that concern it."""
    version = route["apiVersion"].split("/")[1]
    jsonschema.Draft7Validator(_schema(route["kind"], version)).validate(route)
    assert _cel_problems(route["spec"]) == []


def fixture(name: str) -> dict[str, Any]:
    """The (first) Canary in a fixture file; some files also hold the Deployment or MetricTemplates."""
    docs = yaml.safe_load_all((FIXTURES / name).read_text())
    return next(d for d in docs if d and d.get("kind") == "Canary")


def load(name: str, **changes: Any) -> Canary:
    """A fixture Canary with a uid, and ``a__b__c=value`` changes applied (None deletes the key)."""
    doc = fixture(name)
    doc["metadata"]["uid"] = "0d1c6f2e-1111-4c4c-9a9a-123456789abc"
    for dotted, value in changes.items():
        target = doc
        *path, last = dotted.split("__")
        for key in path:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return Canary.from_dict(doc)


def backends(rule: dict[str, Any]) -> dict[str, int]:
    """Weights by backend role: ``apex-primary`` → "primary", ``apex-canary`` → "canary"."""
    return {b["name"].rsplit("-", 1)[1]: b["weight"] for b in rule["backendRefs"]}


def test_canary_route_names_owner_parents_and_hosts() -> None:
    canary = load("podinfo-gatewayapi.yaml")
    route = desired_route(canary, RouteWeights(100, 0))
    assert_valid(route)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    meta = route["metadata"]
    assert (meta["namespace"], meta["name"]) == (canary.metadata.namespace, canary.apex_name)
    [owner] = meta["ownerReferences"]
    assert owner["kind"] == "Canary" and owner["controller"] and owner["blockOwnerDeletion"]
    assert owner["uid"] == canary.metadata.uid
    assert route["spec"]["parentRefs"] == [r.to_dict() for r in canary.spec.service.gateway_refs]
    assert route["spec"]["hostnames"] == canary.spec.service.hosts


@pytest.mark.parametrize(("primary", "canary_weight"), [(100, 0), (90, 10), (50, 50), (0, 100)])
def test_canary_weights_follow_the_analysis(primary: int, canary_weight: int) -> None:
    canary = load("podinfo-gatewayapi.yaml")
    route = desired_route(canary, RouteWeights(primary, canary_weight))
    assert_valid(route)
    [rule] = route["spec"]["rules"]
    assert backends(rule) == {"primary": primary, "canary": canary_weight}
    assert all(b["port"] == canary.spec.service.port for b in rule["backendRefs"])
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


@pytest.mark.parametrize(("primary", "canary_weight"), [(101, -1), (50, 40), (True, 0), (100.0, 0)])
def test_weights_must_be_integers_summing_to_100(primary: Any, canary_weight: Any) -> None:
    with pytest.raises(InvalidWeights):
        RouteWeights(primary, canary_weight)


def test_v1beta1_is_selectable() -> None:
    route = desired_route(load("podinfo-gatewayapi.yaml"), RouteWeights(100, 0), api_version="v1beta1")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert_valid(route)


def test_ab_testing_sends_the_audience_to_the_canary_and_everyone_else_to_the_primary() -> None:
    canary = load("podinfo-ab.yaml")
    route = desired_route(canary, RouteWeights(0, 100))
    assert_valid(route)
    audience, everyone = route["spec"]["rules"]
    assert backends(audience) == {"primary": 0, "canary": 100}
    assert backends(everyone) == {"primary": 100}
    headers = [h for m in audience["matches"] for h in m.get("headers", [])]
    assert headers, "the A/B rule matches on headers"
    assert "headers" not in everyone["matches"][0]


def test_ab_cookie_match_becomes_a_cookie_header_regex() -> None:
    canary = load(
        "podinfo-ab.yaml",
        spec__analysis__match=[{"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}],
    )
    route = desired_route(canary, RouteWeights(0, 100))
    assert_valid(route)
    [match] = route["spec"]["rules"][0]["matches"]
    assert match["headers"] == [
        {"name": "cookie", "type": "RegularExpression", "value": "^(.*?;)?(canary=always)(;.*)?$"}
    ]


def test_ab_matches_combine_with_service_matches() -> None:
    canary = load(
        "podinfo-ab.yaml",
        spec__service__match=[{"uri": {"prefix": "/api"}}, {"uri": {"exact": "/health"}}],
        spec__analysis__match=[{"headers": {"x-canary": {"exact": "insider"}}}, {"queryParams": {"v": {"exact": "2"}}}],
    )
    route = desired_route(canary, RouteWeights(0, 100))
    assert_valid(route)
    audience, everyone = route["spec"]["rules"]
    assert len(audience["matches"]) == 4
    assert {"type": "PathPrefix", "value": "/api"} in [m["path"] for m in audience["matches"]]
    assert [m["path"] for m in everyone["matches"]] == [
        {"type": "PathPrefix", "value": "/api"},
        {"type": "Exact", "value": "/health"},
    ]


def test_blue_green_mirror_copies_primary_traffic_to_the_canary() -> None:
    canary = load("podinfo-bluegreen-mirror.yaml")
    route = desired_route(canary, RouteWeights(100, 0, mirror=True))
    assert_valid(route)
    [rule] = route["spec"]["rules"]
    assert backends(rule) == {"primary": 100, "canary": 0}
    [mirror] = [f for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert mirror["requestMirror"]["backendRef"]["name"] == canary.canary_service_name
    assert mirror["requestMirror"]["backendRef"]["port"] == canary.spec.service.port


def test_mirror_weight_becomes_percent_and_works_with_progressive_weights() -> None:
    canary = load("podinfo-gatewayapi.yaml", spec__analysis__mirror=True, spec__analysis__mirrorWeight=25)
    route = desired_route(canary, RouteWeights(80, 20, mirror=True))
    assert_valid(route)
    [rule] = route["spec"]["rules"]
    assert backends(rule) == {"primary": 80, "canary": 20}
    [mirror] = [f for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert mirror["requestMirror"]["percent"] == 25


def test_no_mirror_filter_when_mirroring_is_off() -> None:
    route = desired_route(load("podinfo-bluegreen-mirror.yaml"), RouteWeights(0, 100))
    assert all(f["type"] != "RequestMirror" for f in route["spec"]["rules"][0].get("filters", []))


def _sticky(**changes: Any) -> Canary:
    return load("podinfo-session-affinity.yaml", **{"status__lastAppliedSpec": "abc123", **changes})


def test_session_affinity_pins_canary_users_by_cookie() -> None:
    canary = _sticky(status__phase="Progressing")
    route = desired_route(canary, RouteWeights(90, 10))
    assert_valid(route)
    to_canary, to_primary, weighted = route["spec"]["rules"]
    assert backends(weighted) == {"primary": 90, "canary": 10}
    assert backends(to_canary) == {"primary": 0, "canary": 100}
    assert backends(to_primary) == {"primary": 100, "canary": 0}
    [canary_backend] = [b for b in weighted["backendRefs"] if b["name"] == canary.canary_service_name]
    [set_cookie] = canary_backend["filters"][0]["responseHeaderModifier"]["add"]
    assert set_cookie["name"] == "Set-Cookie"
    name_value = set_cookie["value"].split(";")[0]
    assert name_value.startswith("flagger-cookie=")
    assert "Max-Age=21600" in set_cookie["value"] and "SameSite=Lax" in set_cookie["value"]
    [cookie_match] = to_canary["matches"][0]["headers"]
    assert cookie_match["name"] == "Cookie" and cookie_match["type"] == "RegularExpression"
    assert name_value.split("=")[1] in cookie_match["value"]
    [primary_backend] = [b for b in weighted["backendRefs"] if b["name"] == canary.primary_service_name]
    primary_cookie = primary_backend["filters"][0]["responseHeaderModifier"]["add"][0]["value"]
    assert primary_cookie.startswith("flagger-primary-cookie=") and "Max-Age=60" in primary_cookie


def test_session_cookie_is_stable_per_revision_and_new_for_the_next() -> None:
    first = desired_route(_sticky(status__phase="Progressing"), RouteWeights(90, 10))
    again = desired_route(_sticky(status__phase="Progressing"), RouteWeights(80, 20))
    other = desired_route(_sticky(status__phase="Progressing", status__lastAppliedSpec="def456"), RouteWeights(90, 10))

    def cookie(route: dict[str, Any]) -> str:
        return route["spec"]["rules"][0]["matches"][0]["headers"][0]["value"]

    assert cookie(first) == cookie(again)
    assert cookie(first) != cookie(other)


def test_session_affinity_expires_the_cookie_when_the_canary_is_back_to_zero() -> None:
    running = desired_route(_sticky(status__phase="Progressing"), RouteWeights(50, 50))
    ended = desired_route(_sticky(status__phase="Succeeded"), RouteWeights(100, 0))
    assert_valid(ended)
    expire, weighted = ended["spec"]["rules"]
    assert backends(weighted) == {"primary": 100, "canary": 0}
    assert expire["matches"][0]["headers"] == running["spec"]["rules"][0]["matches"][0]["headers"]
    modifier = next(f for f in expire["filters"] if f["type"] == "ResponseHeaderModifier")
    [header] = modifier["responseHeaderModifier"]["add"]
    assert header["value"].endswith("Max-Age=-1")
    assert all("filters" not in b for b in weighted["backendRefs"])


def test_session_affinity_before_any_run_has_just_the_weighted_rule() -> None:
    route = desired_route(_sticky(status__phase="Initialized", status__lastAppliedSpec=None), RouteWeights(100, 0))
    assert len(route["spec"]["rules"]) == 1


def test_cookie_expiry_merges_into_the_users_response_header_filter() -> None:
    canary = _sticky(status__phase="Failed", spec__service__headers={"response": {"set": {"x-served-by": "podinfo"}}})
    route = desired_route(canary, RouteWeights(100, 0))
    assert_valid(route)
    modifiers = [f for f in route["spec"]["rules"][0]["filters"] if f["type"] == "ResponseHeaderModifier"]
    assert len(modifiers) == 1
    assert modifiers[0]["responseHeaderModifier"]["set"] == [{"name": "x-served-by", "value": "podinfo"}]


def test_timeouts_headers_and_rewrite() -> None:
    canary = load(
        "podinfo-gatewayapi.yaml",
        spec__service__timeout="30s",
        spec__service__backendTimeout="10s",
        spec__service__match=[{"uri": {"prefix": "/api"}}],
        spec__service__rewrite={"uri": "/", "type": "ReplacePrefixMatch", "authority": "podinfo.internal"},
        spec__service__headers={
            "request": {"set": {"x-b": "2", "x-a": "1"}, "add": {"x-c": "3"}, "remove": ["x-debug"]},
            "response": {"remove": ["server"]},
        },
    )
    route = desired_route(canary, RouteWeights(100, 0))
    assert_valid(route)
    [rule] = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "30s", "backendRequest": "10s"}
    by_type = {f["type"]: f for f in rule["filters"]}
    assert by_type["RequestHeaderModifier"]["requestHeaderModifier"] == {
        "set": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
        "add": [{"name": "x-c", "value": "3"}],
        "remove": ["x-debug"],
    }
    assert by_type["ResponseHeaderModifier"]["responseHeaderModifier"] == {"remove": ["server"]}
    assert by_type["URLRewrite"]["urlRewrite"] == {
        "hostname": "podinfo.internal",
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
    }


def test_rewrite_defaults_to_full_path() -> None:
    canary = load("podinfo-gatewayapi.yaml", spec__service__rewrite={"uri": "/v2"})
    route = desired_route(canary, RouteWeights(100, 0))
    assert_valid(route)
    [rewrite] = [f for f in route["spec"]["rules"][0]["filters"] if f["type"] == "URLRewrite"]
    assert rewrite["urlRewrite"]["path"] == {"type": "ReplaceFullPath", "replaceFullPath": "/v2"}


def test_prefix_rewrite_without_a_single_prefix_match_names_the_field() -> None:
    with pytest.raises(SpecError) as err:
        desired_route(load("podinfo-kitchen-sink.yaml"), RouteWeights(100, 0))
    assert "spec.service.rewrite.type" in [e.field for e in err.value.errors]


def test_backend_timeout_longer_than_request_timeout_is_rejected() -> None:
    canary = load("podinfo-gatewayapi.yaml", spec__service__timeout="5s", spec__service__backendTimeout="10s")
    with pytest.raises(SpecError, match=r"spec\.service\.backendTimeout: must not be longer"):
        desired_route(canary, RouteWeights(100, 0))


CORS = {
    "allowOrigins": [{"exact": "https://example.com"}],
    "allowMethods": ["GET", "POST"],
    "allowHeaders": ["x-some-header"],
    "maxAge": "24h",
    "allowCredentials": True,
}


def test_cors_policy_becomes_the_cors_filter_where_the_crd_has_it() -> None:
    canary = load("podinfo-gatewayapi.yaml", spec__service__corsPolicy=CORS)
    route = desired_route(canary, RouteWeights(100, 0), features=STANDARD_V1_6)
    assert_valid(route)
    [cors] = [f for f in route["spec"]["rules"][0]["filters"] if f["type"] == "CORS"]
    assert cors["cors"] == {
        "allowOrigins": ["https://example.com"],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["x-some-header"],
        "maxAge": 86400,
        "allowCredentials": True,
    }
    older = desired_route(canary, RouteWeights(100, 0), features=RouteFeatures(cors=False))
    assert all(f["type"] != "CORS" for f in older["spec"]["rules"][0].get("filters", []))


def test_retries_only_where_the_crd_has_the_field() -> None:
    retries = {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,429"}
    canary = load("podinfo-gatewayapi.yaml", spec__service__retries=retries)
    standard = desired_route(canary, RouteWeights(100, 0))
    assert_valid(standard)
    assert "retry" not in standard["spec"]["rules"][0]
    experimental = desired_route(canary, RouteWeights(100, 0), features=RouteFeatures(cors=True, retry=True))
    assert experimental["spec"]["rules"][0]["retry"] == {"attempts": 3, "codes": [429, 502, 503, 504]}


def test_grpc_app_protocol_builds_a_grpc_route() -> None:
    canary = load(
        "podinfo-gatewayapi.yaml",
        spec__service__appProtocol="grpc",
        spec__service__match=[{"headers": {"X-Tenant": {"exact": "acme"}}}],
    )
    assert route_kind(canary) == "GRPCRoute"
    route = desired_route(canary, RouteWeights(70, 30, mirror=True), api_version="v1beta1")
    assert_valid(route)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    [rule] = route["spec"]["rules"]
    assert backends(rule) == {"primary": 70, "canary": 30}
    assert rule["matches"] == [{"headers": [{"name": "x-tenant", "type": "Exact", "value": "acme"}]}]
    assert route["spec"]["parentRefs"] and route["spec"]["hostnames"]


def test_grpc_ab_testing() -> None:
    canary = load("podinfo-ab.yaml", spec__service__appProtocol="grpc")
    route = desired_route(canary, RouteWeights(0, 100))
    assert_valid(route)
    audience, everyone = route["spec"]["rules"]
    assert backends(audience)["canary"] == 100
    assert backends(everyone) == {"primary": 100}
    assert "matches" not in everyone


def test_grpc_route_rejects_http_only_options_by_field() -> None:
    canary = load(
        "podinfo-gatewayapi.yaml",
        spec__service__appProtocol="grpc",
        spec__service__timeout="10s",
        spec__service__match=[{"uri": {"prefix": "/pkg.Service/"}}],
    )
    with pytest.raises(SpecError) as err:
        desired_route(canary, RouteWeights(100, 0))
    fields = {e.field for e in err.value.errors}
    assert {"spec.service.timeout", "spec.service.match[0].uri"} <= fields


def test_missing_gateway_refs_is_a_field_error() -> None:
    doc = fixture("podinfo-gatewayapi.yaml")
    del doc["spec"]["service"]["gatewayRefs"]
    with pytest.raises(SpecError, match=r"spec\.service\.gatewayRefs: required"):
        desired_route(doc, RouteWeights(100, 0))


def test_metadata_comes_from_apex_plus_flux_markers_minus_unmanaged_keys() -> None:
    apex = {"labels": {"team": "web", "app.kubernetes.io/instance": "x"}, "annotations": {"note": "hi"}}
    canary = load(
        "podinfo-gatewayapi.yaml",
        spec__service__apex=apex,
        spec__service__unmanagedMetadata={"labels": ["app.kubernetes.io/instance"]},
    )
    meta = desired_route(canary, RouteWeights(100, 0))["metadata"]
    assert meta["labels"] == {"team": "web"}
    assert meta["annotations"]["note"] == "hi"
    assert meta["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"] == "disabled"


def test_plain_dict_canary_builds_the_same_route() -> None:
    canary = load("podinfo-ab.yaml")
    as_dict = copy.deepcopy(canary.to_dict())
    assert desired_route(as_dict, RouteWeights(0, 100)) == desired_route(canary, RouteWeights(0, 100))


def test_too_many_combined_matches_names_the_ab_field() -> None:
    canary = load(
        "podinfo-ab.yaml",
        spec__service__match=[{"uri": {"prefix": f"/p{i}"}} for i in range(9)],
        spec__analysis__match=[{"headers": {"x-user": {"exact": f"u{i}"}}} for i in range(8)],
    )
    with pytest.raises(SpecError, match=r"spec\.analysis\.match: gives 72 matches in one rule"):
        desired_route(canary, RouteWeights(0, 100))
