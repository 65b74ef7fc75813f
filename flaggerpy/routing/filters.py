"""Flagger ``spec.service`` options → Gateway API rule filters, timeouts and retries.

Pure functions on JSON-shaped dicts. Problems are appended to ``errors`` as :class:`FieldError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flaggerpy.apis.errors import FieldError

CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|s|m)")
# Gateway API Duration (GEP-2257): at most 4 number+unit pairs, whole numbers, units h, m, s, ms.
_GATEWAY_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float | None:
    """Seconds in a Go-style duration such as ``1m30s`` or ``500ms``; None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            return None
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    return total if pos == len(text) else None


def gateway_duration(value: Any, field: str, errors: list[FieldError]) -> str | None:
    """A duration in the restricted form Gateway API accepts (``10s``, ``1m30s``, ``500ms``)."""
    if not isinstance(value, str) or not _GATEWAY_DURATION.match(value):
        errors.append(FieldError(field, f'"{value}" is not a Gateway API duration (e.g. 10s, 1m30s, 500ms)'))
        return None
    return value


def rule_timeouts(service: Mapping[str, Any], errors: list[FieldError]) -> dict[str, str] | None:
    """``service.timeout`` / ``service.backendTimeout`` as an HTTPRoute rule ``timeouts`` block."""
    out: dict[str, str] = {}
    if service.get("timeout"):
        request = gateway_duration(service["timeout"], "spec.service.timeout", errors)
        if request is not None:
            out["request"] = request
    if service.get("backendTimeout"):
        backend = gateway_duration(service["backendTimeout"], "spec.service.backendTimeout", errors)
        if backend is not None:
            out["backendRequest"] = backend
    if "request" in out and "backendRequest" in out:
        request_s = duration_seconds(out["request"]) or 0.0
        backend_s = duration_seconds(out["backendRequest"]) or 0.0
        # The CRD rejects a backend timeout longer than the whole request's (0s means "no timeout").
        if request_s > 0 and backend_s > request_s:
            errors.append(
                FieldError(
                    "spec.service.backendTimeout", f"must not be longer than spec.service.timeout ({out['request']})"
                )
            )
    return out or None


def _header_list(values: Any, field: str, errors: list[FieldError]) -> list[dict[str, str]]:
    if not isinstance(values, Mapping):
        errors.append(FieldError(field, "must be a map of header name to value"))
        return []
    out = []
    for name in sorted(values):
        value = values[name]
        if not isinstance(value, str) or value == "":
            errors.append(FieldError(f"{field}[{name}]", "must be a non-empty string"))
            continue
        out.append({"name": name, "value": value})
    return out


def header_modifier(operations: Any, field: str, errors: list[FieldError]) -> dict[str, Any] | None:
    """Istio HeaderOperations (set/add/remove) as a Gateway API HTTPHeaderFilter."""
    if not isinstance(operations, Mapping):
        errors.append(FieldError(field, "must be an object with set, add or remove"))
        return None
    out: dict[str, Any] = {}
    for op in ("set", "add"):
        if operations.get(op):
            headers = _header_list(operations[op], f"{field}.{op}", errors)
            if headers:
                out[op] = headers
    if operations.get("remove"):
        remove = operations["remove"]
        if not isinstance(remove, list) or not all(isinstance(n, str) and n for n in remove):
            errors.append(FieldError(f"{field}.remove", "must be a list of header names"))
        else:
            out["remove"] = sorted(set(remove))
    return out or None


def header_filters(headers: Any, errors: list[FieldError]) -> list[dict[str, Any]]:
    """``service.headers`` as RequestHeaderModifier / ResponseHeaderModifier filters."""
    if not headers:
        return []
    if not isinstance(headers, Mapping):
        errors.append(FieldError("spec.service.headers", "must be an object with request and/or response"))
        return []
    filters: list[dict[str, Any]] = []
    for side, kind, key in (
        ("request", "RequestHeaderModifier", "requestHeaderModifier"),
        ("response", "ResponseHeaderModifier", "responseHeaderModifier"),
    ):
        if headers.get(side):
            modifier = header_modifier(headers[side], f"spec.service.headers.{side}", errors)
            if modifier is not None:
                filters.append({"type": kind, key: modifier})
    return filters


def rewrite_filter(rewrite: Any, matches: list[dict[str, Any]], errors: list[FieldError]) -> dict[str, Any] | None:
    """``service.rewrite`` (uri, authority, type) as a URLRewrite filter.

    Flagger's default type is ReplaceFullPath; ReplacePrefixMatch needs exactly one PathPrefix match on the rule
    (a CEL rule of the CRD), checked here so the user sees the field, not a 422 from the API server.
    """
    if not rewrite:
        return None
    if not isinstance(rewrite, Mapping):
        errors.append(FieldError("spec.service.rewrite", "must be an object with uri and/or authority"))
        return None
    out: dict[str, Any] = {}
    if rewrite.get("authority"):
        out["hostname"] = rewrite["authority"]
    if rewrite.get("uri"):
        kind = "ReplacePrefixMatch" if rewrite.get("type") == "ReplacePrefixMatch" else "ReplaceFullPath"
        if rewrite.get("type") not in (None, "", "ReplacePrefixMatch", "ReplaceFullPath"):
            errors.append(FieldError("spec.service.rewrite.type", "must be ReplaceFullPath or ReplacePrefixMatch"))
            return None
        if kind == "ReplacePrefixMatch" and not (
            len(matches) == 1 and matches[0].get("path", {}).get("type") == "PathPrefix"
        ):
            errors.append(
                FieldError(
                    "spec.service.rewrite.type",
                    "ReplacePrefixMatch needs exactly one spec.service.match entry with a uri prefix",
                )
            )
            return None
        field = "replacePrefixMatch" if kind == "ReplacePrefixMatch" else "replaceFullPath"
        out["path"] = {"type": kind, field: rewrite["uri"]}
    if not out:
        return None
    return {"type": "URLRewrite", "urlRewrite": out}


def cors_filter(policy: Any, errors: list[FieldError]) -> dict[str, Any] | None:
    """Istio CorsPolicy as the Gateway API CORS filter (GEP-1767)."""
    if not policy:
        return None
    field = "spec.service.corsPolicy"
    if not isinstance(policy, Mapping):
        errors.append(FieldError(field, "must be an object"))
        return None
    out: dict[str, Any] = {}
    origins: list[str] = [o for o in policy.get("allowOrigin") or () if isinstance(o, str)]
    for i, origin in enumerate(policy.get("allowOrigins") or ()):
        # Gateway API origins are plain strings (with * wildcards); only exact matches map onto them.
        if isinstance(origin, Mapping) and set(origin) == {"exact"} and isinstance(origin["exact"], str):
            origins.append(origin["exact"])
        else:
            errors.append(FieldError(f"{field}.allowOrigins[{i}]", "only exact origins are supported by Gateway API"))
    if origins:
        out["allowOrigins"] = sorted(set(origins))
    methods = policy.get("allowMethods") or []
    bad = [m for m in methods if not isinstance(m, str) or m.upper() not in CORS_METHODS]
    if bad:
        errors.append(FieldError(f"{field}.allowMethods", f"{bad[0]!r} is not one of {', '.join(CORS_METHODS)}"))
    elif methods:
        out["allowMethods"] = sorted({m.upper() for m in methods})
    for key in ("allowHeaders", "exposeHeaders"):
        if policy.get(key):
            out[key] = sorted(set(policy[key]))
    if policy.get("maxAge"):
        seconds = duration_seconds(policy["maxAge"])
        if seconds is None or seconds < 1:
            errors.append(FieldError(f"{field}.maxAge", f'"{policy["maxAge"]}" must be a duration of at least 1s'))
        else:
            out["maxAge"] = int(seconds)
    if policy.get("allowCredentials"):
        out["allowCredentials"] = True
    return {"type": "CORS", "cors": out}


def mirror_filter(name: str, port: int, percent: int | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A RequestMirror filter copying requests to Service ``name`` (``percent`` of them, all when None)."""
    backend: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": port}
    if namespace:
        backend["namespace"] = namespace
    mirror: dict[str, Any] = {"backendRef": backend}
    if percent is not None:
        mirror["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": mirror}


def static_mirror_filters(mirrors: Any, errors: list[FieldError]) -> list[dict[str, Any]]:
    """``service.mirror`` (Gateway API HTTPRequestMirrorFilter list) as RequestMirror filters, passed through."""
    out: list[dict[str, Any]] = []
    for i, mirror in enumerate(mirrors or ()):
        if not isinstance(mirror, Mapping) or not isinstance(mirror.get("backendRef"), Mapping):
            errors.append(FieldError(f"spec.service.mirror[{i}].backendRef", "required"))
            continue
        out.append({"type": "RequestMirror", "requestMirror": dict(mirror)})
    return out


def set_cookie_filter(value: str) -> dict[str, Any]:
    """A ResponseHeaderModifier that adds one ``Set-Cookie`` header."""
    return {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": value}]},
    }


# Envoy/Istio retryOn conditions that mean "the upstream answered with one of these codes".
_NAMED_CODES = {
    "5xx": (500, 501, 502, 503, 504),
    "gateway-error": (502, 503, 504),
    "unavailable": (503,),
    "resource-exhausted": (429,),
    "retriable-status-codes": (),
}


def rule_retry(retries: Any, errors: list[FieldError]) -> dict[str, Any] | None:
    """Istio HTTPRetry (attempts, perTryTimeout, retryOn) as the experimental HTTPRoute rule ``retry`` (GEP-1731).

    ``retryOn`` status codes and the 5xx / gateway-error classes become ``codes``; connection-level conditions
    (connect-failure, reset, ...) are what Gateway API retries on anyway.
    """
    if not retries:
        return None
    field = "spec.service.retries"
    if not isinstance(retries, Mapping):
        errors.append(FieldError(field, "must be an object"))
        return None
    out: dict[str, Any] = {}
    attempts = retries.get("attempts")
    if attempts is not None:
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            errors.append(FieldError(f"{field}.attempts", "must be an integer >= 0"))
        else:
            out["attempts"] = attempts
    codes: set[int] = set()
    for token in str(retries.get("retryOn") or "").split(","):
        token = token.strip()
        if token.isdigit():
            code = int(token)
            if not 400 <= code <= 599:
                errors.append(FieldError(f"{field}.retryOn", f"status code {code} must be between 400 and 599"))
            codes.add(code)
        elif token in _NAMED_CODES:
            codes.update(_NAMED_CODES[token])
    if codes:
        out["codes"] = sorted(c for c in codes if 400 <= c <= 599)
    return out or None
