"""The versions of objects this process wrote, so the watch event that merely echoes a write can be ignored.

Every write the engine makes comes back through an informer a moment later. Such an event tells the engine nothing
it did not know when it wrote (the step that wrote has already scheduled its next visit), yet reacting to it costs
a whole reconcile. An event carrying exactly the resourceVersion a write returned is that echo; anything else
(a later version, someone else's edit, the API server's status updates) still wakes the canary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.kube.api import Resource


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("resourceVersion") or "")


class OwnWrites:
    """The last resourceVersion this process wrote per object (one entry per object)."""

    def __init__(self) -> None:
        self._versions: dict[tuple[Resource, str, str], str] = {}

    def remember(self, resource: Resource, written: Mapping[str, Any]) -> None:
        """Record the object a write returned."""
        namespace, name, version = _identity(written)
        if version:
            self._versions[(resource, namespace, name)] = version

    def is_echo(self, resource: Resource, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` is exactly the version our last write of it produced."""
        namespace, name, version = _identity(obj)
        return bool(version) and self._versions.get((resource, namespace, name)) == version

    def forget(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        """Drop a deleted object."""
        namespace, name, _ = _identity(obj)
        self._versions.pop((resource, namespace, name), None)
