"""Istio ``HTTPMatchRequest`` (Flagger's ``service.match`` / ``analysis.match``) → Gateway API route matches.

Pure functions on JSON-shaped dicts. Everything Gateway API cannot express becomes a :class:`FieldError` naming the
manifest field, instead of being dropped silently: a dropped match would send traffic where the user did not ask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flaggerpy.apis.errors import FieldError

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
DEFAULT_PATH_MATCH: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}

# Istio match keys that change which requests match but have no Gateway API counterpart.
_UNSUPPORTED = ("scheme", "authority", "port", "sourceLabels", "sourceNamespace", "withoutHeaders", "gateways")
# Keys that only label a match; they do not change routing.
_LABELS = ("name", "statPrefix")


def _regex_literal(text: str) -> str:
    # re.escape output is valid RE2 (the dialect most Gateway implementations use).
    return re.escape(text)


def string_match(
    value: Any, field: str, errors: list[FieldError], *, allow_prefix_suffix: bool = True
) -> tuple[str, str] | None:
    """An Istio StringMatch (exact/prefix/suffix/regex) as ``(type, value)`` with type Exact or RegularExpression.

    Gateway API header and query matches only know Exact and RegularExpression, so prefix and suffix become anchored
    regular expressions.
    """
    if not isinstance(value, Mapping):
        errors.append(FieldError(field, "must be an object with one of exact, prefix, suffix, regex"))
        return None
    present = [k for k in ("exact", "prefix", "suffix", "regex") if value.get(k) not in (None, "")]
    unknown = sorted(set(value) - {"exact", "prefix", "suffix", "regex"})
    if unknown:
        errors.append(FieldError(f"{field}.{unknown[0]}", "is not a string match (exact, prefix, suffix, regex)"))
        return None
    if not present:
        # An empty Istio StringMatch means "present, any value".
        return "RegularExpression", ".*"
    if len(present) != 1:
        errors.append(FieldError(field, "needs exactly one of exact, prefix, suffix, regex"))
        return None
    kind = present[0]
    text = value[kind]
    if not isinstance(text, str):
        errors.append(FieldError(f"{field}.{kind}", "must be a string"))
        return None
    if kind == "exact":
        return "Exact", text
    if kind == "regex":
        return "RegularExpression", text
    if not allow_prefix_suffix:
        errors.append(FieldError(f"{field}.{kind}", "is not supported here (use exact or regex)"))
        return None
    if kind == "prefix":
        return "RegularExpression", f"^{_regex_literal(text)}.*"
    return "RegularExpression", f".*{_regex_literal(text)}$"


def _path_match(uri: Any, ignore_case: bool, field: str, errors: list[FieldError]) -> dict[str, Any] | None:
    if not isinstance(uri, Mapping):
        errors.append(FieldError(field, "must be an object with one of exact, prefix, suffix, regex"))
        return None
    present = [k for k in ("exact", "prefix", "suffix", "regex") if uri.get(k) not in (None, "")]
    if not present:
        return None
    if len(present) != 1:
        errors.append(FieldError(field, "needs exactly one of exact, prefix, suffix, regex"))
        return None
    kind = present[0]
    text = uri[kind]
    if not isinstance(text, str):
        errors.append(FieldError(f"{field}.{kind}", "must be a string"))
        return None
    if kind in ("exact", "prefix") and not text.startswith("/"):
        errors.append(FieldError(f"{field}.{kind}", f'"{text}" must be an absolute path starting with "/"'))
        return None
    if ignore_case:
        # Only a regular expression can match case-insensitively; (?i) is understood by RE2 and PCRE alike.
        body = {
            "exact": f"{_regex_literal(text)}$",
            "prefix": f"{_regex_literal(text)}.*",
            "suffix": f".*{_regex_literal(text)}$",
            "regex": text,
        }[kind]
        return {"type": "RegularExpression", "value": f"(?i){body}"}
    if kind == "exact":
        return {"type": "Exact", "value": text}
    if kind == "prefix":
        return {"type": "PathPrefix", "value": text}
    if kind == "suffix":
        return {"type": "RegularExpression", "value": f".*{_regex_literal(text)}$"}
    return {"type": "RegularExpression", "value": text}


def _named_matches(
    entries: Any, field: str, errors: list[FieldError], *, lower_names: bool = False
) -> list[dict[str, Any]]:
    if not isinstance(entries, Mapping):
        errors.append(FieldError(field, "must be a map of name to string match"))
        return []
    out: list[dict[str, Any]] = []
    for name in sorted(entries):
        converted = string_match(entries[name], f"{field}[{name}]", errors)
        if converted is None:
            continue
        kind, value = converted
        if value == "":
            errors.append(FieldError(f"{field}[{name}]", "must not be empty"))
            continue
        out.append({"name": name.lower() if lower_names else name, "type": kind, "value": value})
    return out


def _check_unsupported(request: Mapping[str, Any], field: str, errors: list[FieldError]) -> None:
    for key in _UNSUPPORTED:
        if request.get(key) not in (None, "", [], {}):
            errors.append(FieldError(f"{field}.{key}", "is not supported by Gateway API routes"))


def http_match(request: Any, field: str, errors: list[FieldError]) -> dict[str, Any] | None:
    """One Istio HTTPMatchRequest as a Gateway API HTTPRouteMatch, or None when it holds nothing that matches."""
    if not isinstance(request, Mapping):
        errors.append(FieldError(field, "must be an object"))
        return None
    _check_unsupported(request, field, errors)
    known = {"uri", "method", "headers", "queryParams", "ignoreUriCase", *_UNSUPPORTED, *_LABELS}
    for key in sorted(set(request) - known):
        errors.append(FieldError(f"{field}.{key}", "is not a match field Gateway API supports"))
    match: dict[str, Any] = {}
    if request.get("uri") is not None:
        path = _path_match(request["uri"], bool(request.get("ignoreUriCase")), f"{field}.uri", errors)
        if path is not None:
            match["path"] = path
    if request.get("method") is not None:
        method = string_match(request["method"], f"{field}.method", errors, allow_prefix_suffix=False)
        if method is not None:
            kind, value = method
            if kind != "Exact" or value.upper() not in HTTP_METHODS:
                errors.append(
                    FieldError(f"{field}.method", f"must be an exact match on one of {', '.join(HTTP_METHODS)}")
                )
            else:
                match["method"] = value.upper()
    if request.get("headers"):
        headers = _named_matches(request["headers"], f"{field}.headers", errors)
        if headers:
            match["headers"] = headers
    if request.get("queryParams"):
        params = _named_matches(request["queryParams"], f"{field}.queryParams", errors)
        if params:
            match["queryParams"] = params
    return match or None


def http_matches(requests: Sequence[Any] | None, field: str, errors: list[FieldError]) -> list[dict[str, Any]]:
    """All matches of a ``match`` list; an empty result means "no restriction"."""
    out: list[dict[str, Any]] = []
    for i, request in enumerate(requests or ()):
        converted = http_match(request, f"{field}[{i}]", errors)
        if converted is not None:
            out.append(converted)
    return out


def grpc_matches(requests: Sequence[Any] | None, field: str, errors: list[FieldError]) -> list[dict[str, Any]]:
    """Istio matches for a GRPCRoute: only header matches carry over (gRPC has no paths, methods or queries)."""
    out: list[dict[str, Any]] = []
    for i, request in enumerate(requests or ()):
        here = f"{field}[{i}]"
        if not isinstance(request, Mapping):
            errors.append(FieldError(here, "must be an object"))
            continue
        for key in sorted(set(request) - {"headers", *_LABELS}):
            if request.get(key) not in (None, "", [], {}, False):
                errors.append(FieldError(f"{here}.{key}", "is not supported for gRPC routes (only headers)"))
        # gRPC metadata keys are lower case on the wire; GRPCRoute compares them that way.
        headers = _named_matches(request.get("headers") or {}, f"{here}.headers", errors, lower_names=True)
        if headers:
            out.append({"headers": headers})
    return out


def _merge_named(base: list[dict[str, Any]] | None, extra: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    merged = {entry["name"].lower(): entry for entry in base or ()}
    for entry in extra or ():
        merged[entry["name"].lower()] = entry
    return list(merged.values())


def merge_matches(analysis: list[dict[str, Any]], service: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every A/B (or cookie) match combined with every service match: both must hold for a request to qualify.

    Where both name the same header or query parameter, the analysis one wins (the list is a map keyed by name in
    the CRD, so duplicates would be rejected).
    """
    if not analysis:
        return [dict(m) for m in service]
    if not service:
        return [dict(m) for m in analysis]
    out: list[dict[str, Any]] = []
    for a in analysis:
        for s in service:
            combined = dict(s)
            for key in ("path", "method"):
                if key in a:
                    combined[key] = a[key]
            for key in ("headers", "queryParams"):
                if a.get(key):
                    combined[key] = _merge_named(s.get(key), a[key])
            out.append(combined)
    return out
