"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge patch.

Strategic merge covers what Kubernetes' built-in kinds use in practice: lists of objects merged by a key
(containers by ``name``, container ports by ``containerPort``, Service ports by ``port``, volumeMounts by
``mountPath``, conditions by ``type``, ...), ``metadata.finalizers`` merged as a set, and the directives kubectl
sends: ``$patch: replace|delete|merge``, ``$retainKeys``, ``$setElementOrder/<list>`` and
``$deleteFromPrimitiveList/<list>``. Other lists are replaced, as for an atomic list.
"""

from __future__ import annotations

import copy
from typing import Any

from flaggerpy.sandbox.apiserver.errors import StatusError, bad_request

# list field name -> merge key candidates (the first one present in the items wins)
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
    "schedulingGates": ("name",),
}
# lists of scalars merged as sets
SET_LISTS = frozenset({"finalizers"})


def _patch_error(message: str) -> StatusError:
    """A patch that cannot be applied (bad op, missing path, failed test): 422 like kube-apiserver."""
    return StatusError(422, "Invalid", message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _patch_error(f"json patch path {path!r} must start with '/'")
    return [_unescape(t) for t in path[1:].split("/")]


def _container(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise _patch_error(f"json patch: path {path!r} does not exist")
    return node


def _get(doc: Any, path: str) -> Any:
    return _container(doc, _pointer(path), path)


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _patch_error("json patch: cannot remove the whole document")
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _patch_error(f"json patch: unable to remove nonexistent key {path!r}")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _patch_error(f"json patch: replace of missing key {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _patch_error(f"json patch: index {last!r} out of range at {path!r}")
    else:
        raise _patch_error(f"json patch: {path!r} is not inside an object or array")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 on a copy of ``target``."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _patch_error(f"json patch operation {i} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _patch_error(f"json patch operation {i} ({kind}) needs 'value'")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise _patch_error(f"json patch: test operation failed at {path!r}")
        else:
            raise _patch_error(f"json patch operation {i}: unknown op {kind!r}")
    return doc


def _merge_key(field: str, items: list[Any]) -> str | None:
    candidates = MERGE_KEYS.get(field)
    if not candidates:
        return None
    for candidate in candidates:
        if any(isinstance(item, dict) and candidate in item for item in items):
            return candidate
    return candidates[0]


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if field in SET_LISTS:
        merged = list(original)
        merged.extend(v for v in patch if v not in merged)
        return merged
    key = _merge_key(field, original + patch)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [strip_directives(item) for item in patch]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [strip_directives(item) for item in patch if item.get("$patch") != "replace"]
    result = [copy.deepcopy(item) for item in original]
    for item in patch:
        if key not in item:
            raise _patch_error(f"strategic merge patch: an item of {field!r} has no merge key {key!r}")
        index = next((i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strip_directives(item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Apply ``$setElementOrder``: listed items first in that order, the rest after, as kube does."""
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (wanted.index(ident(pair[1])) if ident(pair[1]) in wanted else len(wanted), pair[0]),
    )
    return [item for _, item in ranked]


def strip_directives(value: Any) -> Any:
    """A copy of a patch fragment without ``$``-directives, for inserting as new content."""
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``original`` (not mutated)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return strip_directives(patch)
    if directive == "delete":
        return None
    result = dict(original)
    retain = patch.get("$retainKeys")
    deferred_orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            deferred_orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = strip_directives(value)
    for name, order in deferred_orders.items():
        if isinstance(result.get(name), list):
            result[name] = _order(result[name], order, _merge_key(name, result[name]))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result
