"""The OpenAPI v3 documents kubectl reads before writing.

kubectl 1.32 validates with ``fieldValidation=Strict`` when the group-version's OpenAPI v3 document lists that
query parameter on the resource's PATCH operation; otherwise it falls back to client-side validation that needs the
protobuf OpenAPI v2 document. So every served group-version gets a document with its paths and that parameter (no
schemas: kubectl then falls back to its compiled-in types for strategic merge patches).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flaggerpy.sandbox.apiserver.registry import Registry, ResourceType

_QUERY_PARAMS = ("fieldValidation", "fieldManager", "dryRun")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _served(registry: Registry) -> dict[str, list[tuple[ResourceType, str]]]:
    served: dict[str, list[tuple[ResourceType, str]]] = {}
    for rt in registry.types():
        for version in rt.versions:
            served.setdefault(_gv_path(rt.group, version), []).append((rt, version))
    return served


def root(registry: Registry) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group-version with a hash that changes when its resources change."""
    paths = {}
    for gv, resources in sorted(_served(registry).items()):
        digest = hashlib.sha256(repr(sorted((rt.plural, rt.kind, v) for rt, v in resources)).encode()).hexdigest()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def group_version(registry: Registry, gv: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document for one group-version (``api/v1`` or ``apis/<group>/<version>``)."""
    resources = _served(registry).get(gv)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    params = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for name in _QUERY_PARAMS]
    for rt, version in resources:
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        prefix = f"/{gv}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"/{gv}/{rt.plural}"
        item = {
            verb: {"operationId": f"{verb}{rt.kind}", "parameters": params, "x-kubernetes-group-version-kind": gvk,
                   "responses": {"200": {"description": "OK"}}}
            for verb in ("get", "put", "patch", "delete")
        }
        paths[f"{prefix}/{{name}}"] = item
        paths[prefix] = {
            verb: {"operationId": f"{verb}{rt.kind}Collection", "parameters": params,
                   "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}
            for verb in ("get", "post")
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": {}}}
