"""Read access to the informer caches the engine decides from (invariant 5: reads never hit the API server)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flaggerpy.kube.api import Resource
from flaggerpy.kube.informer import Store


class Caches:
    """Informer stores by resource; a resource without an informer reads as empty (e.g. ConfigMaps when config
    tracking is off)."""

    def __init__(self, stores: Mapping[Resource, Store],
                 on_unwatched: Callable[[Resource], None] | None = None) -> None:
        self._stores = dict(stores)
        self._on_unwatched = on_unwatched

    def add(self, resource: Resource, store: Store) -> None:
        """Start reading ``resource`` from ``store`` (an informer started after the others)."""
        self._stores[resource] = store

    def has(self, resource: Resource) -> bool:
        """Whether the engine watches ``resource``."""
        return resource in self._stores

    def ask_for(self, resource: Resource) -> None:
        """A canary needs ``resource``, which is not watched: let the controller look for it again (an optional
        kind, such as KEDA's ScaledObjects, installed after the controller started)."""
        if self._on_unwatched is not None and resource not in self._stores:
            self._on_unwatched(resource)

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached object, or None when absent (or not watched)."""
        store = self._stores.get(resource)
        return None if store is None else store.get_by_name(namespace, name)

    def list(self, resource: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Cached objects of ``resource``, in one namespace or all."""
        store = self._stores.get(resource)
        if store is None:
            return []
        return store.by_namespace(namespace) if namespace else store.objects()
