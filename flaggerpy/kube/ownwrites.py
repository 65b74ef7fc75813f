"""The versions of objects this process wrote: so the watch event that merely echoes a write can be ignored, and
a cache that has not caught up with a write yet is recognised as behind.

Every write the engine makes comes back through an informer a moment later. Such an event tells the engine nothing
it did not know when it wrote (the step that wrote has already scheduled its next visit), yet reacting to it costs
a whole reconcile. An event carrying exactly the resourceVersion a write returned is that echo; anything else
(a later version, someone else's edit, the API server's status updates) still wakes the canary. One tracker per
process, shared by everything that writes (workloads, Services, configs, routes, Canary statuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaggerpy.kube.api import Resource
from flaggerpy.kube.versions import is_older


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("resourceVersion") or "")


class OwnWrites:
    """The last resourceVersion this process wrote per object (one entry per object, dropped on its delete)."""

    def __init__(self) -> None:
        self._versions: dict[tuple[Resource, str, str], str] = {}

    def __len__(self) -> int:
        return len(self._versions)

    def remember(self, resource: Resource, written: Mapping[str, Any]) -> None:
        """Record the object a write returned."""
        namespace, name, version = _identity(written)
        if version:
            self._versions[(resource, namespace, name)] = version

    def is_echo(self, resource: Resource, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` is exactly the version our last write of it produced."""
        namespace, name, version = _identity(obj)
        return bool(version) and self._versions.get((resource, namespace, name)) == version

    def is_behind(self, resource: Resource, cached: Mapping[str, Any]) -> bool:
        """Whether ``cached`` (an informer's copy) predates our last write of that object."""
        namespace, name, version = _identity(cached)
        return is_older(version, self._versions.get((resource, namespace, name)))

    def forget(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        """Drop a deleted object."""
        namespace, name, _ = _identity(obj)
        self.forget_name(resource, namespace, name)

    def forget_name(self, resource: Resource, namespace: str, name: str) -> None:
        """Drop the object ``namespace/name`` of ``resource``."""
        self._versions.pop((resource, namespace, name), None)
