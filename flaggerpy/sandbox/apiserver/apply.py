"""Server-side apply's field management: who owns which field, apply conflicts, and fields an applier dropped.

As kube-apiserver keeps ``metadata.managedFields``: every write names a field manager (``fieldManager``, else the
client's User-Agent up to its first ``/``). An update (POST, PUT, non-apply PATCH) takes ownership of the fields
whose value it set or changed; an apply (``application/apply-patch+yaml``) owns exactly the fields of its
configuration. An apply that changes a field another manager owns is a 409 Conflict naming the field and the
manager, unless ``force=true``, which takes the field over. A field an applier owned and no longer sends is removed,
unless another manager owns it too.

Simplifications: lists are atomic (owned as a whole, as for ``x-kubernetes-list-type: atomic``; kube merges
associative lists such as containers by key), and status is not tracked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.clock import now

Path = tuple[str, ...]
_UNMANAGED_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                             "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"})
_UNMANAGED_TOP = frozenset({"apiVersion", "kind", "status"})


def field_manager(query: dict[str, str] | Any, user_agent: str) -> str:
    """The manager of a write: ``fieldManager``, else the User-Agent's program name (kube's default)."""
    manager = query.get("fieldManager")
    if manager:
        return str(manager)
    return user_agent.split("/", 1)[0] or "unknown"


def _leaves(value: Any, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _leaves(inner, (*prefix, str(key)), out)
    else:
        out.add(prefix)


def field_set(obj: dict[str, Any]) -> set[Path]:
    """The managed leaf fields of ``obj`` (nested maps are walked; lists and scalars are leaves)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in _UNMANAGED_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _UNMANAGED_META:
                    _leaves(meta_value, ("metadata", meta_key), out)
        else:
            _leaves(value, (key,), out)
    return out


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """``FieldsV1`` (``{"f:spec": {"f:replicas": {}}}``) of a set of paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def from_fields_v1(fields: Any, prefix: Path = ()) -> set[Path]:
    """The leaf paths a ``FieldsV1`` tree names (keys other than ``f:`` ones, e.g. ``k:``/``v:``, stop the walk)."""
    out: set[Path] = set()
    if not isinstance(fields, dict):
        return out
    children = {k[2:]: v for k, v in fields.items() if isinstance(k, str) and k.startswith("f:")}
    if not children:
        if prefix:
            out.add(prefix)
        return out
    for key, inner in children.items():
        out |= from_fields_v1(inner, (*prefix, key))
    return out


def _overlaps(path: Path, owned: set[Path]) -> list[Path]:
    return [other for other in owned
            if other[:len(path)] == path or path[:len(other)] == other]


def _entries(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    managed = ((obj or {}).get("metadata") or {}).get("managedFields")
    return [dict(e) for e in managed if isinstance(e, dict)] if isinstance(managed, list) else []


def _entry(manager: str, operation: str, api_version: str, paths: set[Path],
           subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now(),
             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _owned(entry: dict[str, Any]) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1"))


def _without(entries: list[dict[str, Any]], taken: set[Path]) -> list[dict[str, Any]]:
    """``entries`` with ``taken`` (and what lies under or over it) removed; empty entries dropped."""
    out = []
    for entry in entries:
        owned = _owned(entry)
        kept = {p for p in owned if not _overlaps(p, taken)}
        if kept != owned:
            entry = dict(entry, fieldsV1=to_fields_v1(kept))
        if kept:
            out.append(entry)
    return out


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str,
                  subresource: str | None = None) -> list[dict]:
    """``managedFields`` after ``manager`` wrote ``new`` in place of ``old`` (None on create) with an update (through
    ``subresource``, e.g. ``scale``, when given)."""
    entries = _entries(old)
    changed = {p for p in field_set(new) if old is None or _get(old, p) != _get(new, p)}
    if not changed:
        return entries
    entries = _without(entries, changed)
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Update"
                 and e.get("subresource") == subresource), None)
    if mine is None:
        entries.append(_entry(manager, "Update", api_version, changed, subresource))
    else:
        entries[entries.index(mine)] = _entry(manager, "Update", api_version, _owned(mine) | changed, subresource)
    return entries


def applied_on_create(applied: dict[str, Any], manager: str, api_version: str) -> dict[str, Any]:
    """``applied`` as the object an apply creates: ``manager`` owns every field of it."""
    meta = dict(applied.get("metadata") or {})
    meta["managedFields"] = [_entry(manager, "Apply", api_version, field_set(applied))]
    return dict(applied, metadata=meta)


def apply(current: dict[str, Any], applied: dict[str, Any], merged: dict[str, Any], manager: str, force: bool,
          api_version: str, kind: str) -> dict[str, Any]:
    """The object an apply of ``applied`` by ``manager`` leaves: ``merged`` (the configuration merged into
    ``current``) without the fields ``manager`` applied before and dropped now, with its ``managedFields``.
    StatusError 409 on conflicts with other managers unless ``force``."""
    entries = _entries(current)
    wanted = field_set(applied)
    conflicts: list[tuple[str, Path]] = []
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        for path in wanted:
            for other in _overlaps(path, _owned(entry)):
                if _get(current, other) != _get(merged, other):
                    conflicts.append((str(entry.get("manager")), other))
    if conflicts and not force:
        raise _conflict(sorted(set(conflicts)), api_version, kind, current["metadata"].get("name", ""))
    previous = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    others = [e for e in entries if e is not previous]
    if force:
        others = _without(others, wanted)
    still_owned = set().union(*(_owned(e) for e in others)) if others else set()
    result = dict(merged)
    for path in (_owned(previous) if previous else set()) - wanted:
        if not _overlaps(path, still_owned):
            result = _remove(result, path)
    # Re-applying the same configuration keeps the entry (and its time), so a no-op apply stays a no-op.
    entry = previous if previous is not None and _owned(previous) == wanted else _entry(
        manager, "Apply", api_version, wanted)
    result["metadata"] = dict(result.get("metadata") or {}, managedFields=[*others, entry])
    return result


def _remove(obj: dict[str, Any], path: Path) -> dict[str, Any]:
    """A copy of ``obj`` without ``path`` (maps on the way are copied, never changed in place)."""
    if len(path) == 1:
        return {k: v for k, v in obj.items() if k != path[0]}
    inner = obj.get(path[0])
    if not isinstance(inner, dict):
        return obj
    return dict(obj, **{path[0]: _remove(inner, path[1:])})


def _conflict(conflicts: list[tuple[str, Path]], api_version: str, kind: str, name: str) -> StatusError:
    fields = [(manager, "." + ".".join(path)) for manager, path in conflicts]
    lines = "\n".join(f'- conflict with "{manager}" using {api_version}: {field}' for manager, field in fields)
    count = f"{len(fields)} conflict{'s' if len(fields) > 1 else ''}"
    message = (f"Apply failed with {count}: conflict with \"{fields[0][0]}\" using {api_version}: {fields[0][1]}"
               if len(fields) == 1 else f"Apply failed with {count}:\n{lines}")
    return StatusError(409, "Conflict", message, {"name": name, "kind": kind.lower(), "causes": [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{manager}" using {api_version}',
         "field": field} for manager, field in fields]})
