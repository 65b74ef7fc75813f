"""Copies of JSON data (what Kubernetes objects are made of) without ``copy.deepcopy``'s generality.

JSON values are dicts, lists and immutable scalars with no shared or cyclic references, so a copy needs neither
deepcopy's memo nor its type dispatch; on the engine's hot paths that makes it several times cheaper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: for fields a tenant may have written in any shape."""
    return value if isinstance(value, Mapping) else {}


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON value: new dicts and lists all the way down, scalars shared."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value
