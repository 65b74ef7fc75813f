"""Route specs normalised for the API server's defaults, so "desired" and "live" compare equal when they mean the same.

The API server fills defaults from the CRD schema (``weight: 1``, ``group: ""``, ``kind: Service``, a ``PathPrefix /``
path match, parentRef ``group``/``kind``, header match ``type: Exact``, ...) and drops empty lists. Comparing our
desired spec with the live one without this would see a difference on every reconcile and write forever
(invariant 5: no write when nothing differs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"
MANAGED_SPEC_KEYS = ("parentRefs", "hostnames", "rules")
"""The spec fields a canary manages on its route."""


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            # Only containers are walked (and dropped when they come back empty): the route of every step is
            # normalised, and comparing each scalar with [] and {} was most of the time spent here.
            if isinstance(item, dict | list):
                item = _drop_empty(item)
                if not item:
                    continue
            elif item is None:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [_drop_empty(item) for item in value]
    return value


def _object_ref(ref: dict[str, Any], *, default_kind: str = "Service", default_group: str = "") -> None:
    ref.setdefault("group", default_group)
    ref.setdefault("kind", default_kind)


def _named(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for entry in entries:
        entry.setdefault("type", "Exact")
    # These lists are maps keyed by name in the CRD: their order carries no meaning.
    return sorted(entries, key=lambda e: str(e.get("name", "")).lower())


def _filter(item: dict[str, Any]) -> None:
    mirror = item.get("requestMirror")
    if isinstance(mirror, dict):
        if isinstance(mirror.get("backendRef"), dict):
            _object_ref(mirror["backendRef"])
        if isinstance(mirror.get("fraction"), dict):
            mirror["fraction"].setdefault("denominator", 100)
    cors = item.get("cors")
    if isinstance(cors, dict):
        cors.setdefault("maxAge", 5)
        for key in ("allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders"):
            if isinstance(cors.get(key), list):
                cors[key] = sorted(cors[key])
    for key in ("requestHeaderModifier", "responseHeaderModifier"):
        modifier = item.get(key)
        if isinstance(modifier, dict):
            for op in ("set", "add"):
                if isinstance(modifier.get(op), list):
                    modifier[op] = sorted(modifier[op], key=lambda h: str(h.get("name", "")).lower())
            if isinstance(modifier.get("remove"), list):
                modifier["remove"] = sorted(modifier["remove"])


def _http_match(match: dict[str, Any]) -> None:
    path = match.setdefault("path", {})
    if isinstance(path, dict):
        path.setdefault("type", "PathPrefix")
        path.setdefault("value", "/")
    for key in ("headers", "queryParams"):
        if isinstance(match.get(key), list):
            match[key] = _named(match[key])


def _grpc_match(match: dict[str, Any]) -> None:
    if isinstance(match.get("method"), dict):
        match["method"].setdefault("type", "Exact")
    if isinstance(match.get("headers"), list):
        match["headers"] = _named(match["headers"])


def _rule(rule: dict[str, Any], kind: str) -> None:
    if kind == "HTTPRoute":
        matches = rule.get("matches") or [{}]
        for match in matches:
            _http_match(match)
        rule["matches"] = matches
    else:
        for match in rule.get("matches") or ():
            _grpc_match(match)
    for item in rule.get("filters") or ():
        _filter(item)
    for backend in rule.get("backendRefs") or ():
        _object_ref(backend)
        backend.setdefault("weight", 1)
        for item in backend.get("filters") or ():
            _filter(item)


def normalize_spec(spec: dict[str, Any] | None, kind: str = "HTTPRoute") -> dict[str, Any]:
    """A deep copy of a route ``spec`` with every server default filled in and empty values removed."""
    # _drop_empty rebuilds every dict and list, so the defaults below never touch ``spec`` itself.
    out = _drop_empty(spec or {})
    for parent in out.get("parentRefs") or ():
        _object_ref(parent, default_kind="Gateway", default_group=GATEWAY_GROUP)
    if kind == "HTTPRoute" and not out.get("rules"):
        out["rules"] = [{}]
    for rule in out.get("rules") or ():
        _rule(rule, kind)
    cleaned: dict[str, Any] = _drop_empty(out)
    return cleaned


def specs_equal(desired: dict[str, Any] | None, live: dict[str, Any] | None, kind: str = "HTTPRoute") -> bool:
    """True when two route specs mean the same once the server's defaults are accounted for."""
    return normalize_spec(desired, kind) == normalize_spec(live, kind)


def managed_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Only the spec fields a canary manages (parentRefs, hostnames, rules); others belong to someone else.

    The values are shared with ``spec``: copy before editing them.
    """
    source = spec or {}
    return {key: source[key] for key in MANAGED_SPEC_KEYS if key in source}
