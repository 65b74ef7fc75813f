"""Store indexes are computed once per stored version: removing or replacing an object never re-runs the index
functions on the old one, and lookups stay right when values move."""

from __future__ import annotations

from flaggerpy.kube.api import Obj
from flaggerpy.kube.informer import Store


def svc(name: str, app: str, rv: int, namespace: str = "a") -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)}, "spec": {"app": app}}


def names(objs: list[Obj]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def test_each_version_is_indexed_once_and_lookups_follow_changes() -> None:
    calls: list[str] = []

    def by_app(obj: Obj) -> list[str]:
        calls.append(f"{obj['metadata']['name']}@{obj['metadata']['resourceVersion']}")
        return [obj["spec"]["app"]]

    store = Store({"app": by_app})
    store.put(svc("s1", "web", 1))
    store.put(svc("s2", "web", 2))
    store.put(svc("s1", "web", 3))  # a status-like change: same index value
    store.put(svc("s2", "db", 4))  # the value moves
    assert calls == ["s1@1", "s2@2", "s1@3", "s2@4"]
    assert names(store.by_index("app", "web")) == ["s1"]
    assert names(store.by_index("app", "db")) == ["s2"]

    assert store.remove("a/s2") is not None
    assert calls == ["s1@1", "s2@2", "s1@3", "s2@4"]  # removal reuses what was computed
    assert store.by_index("app", "db") == []
    assert names(store.by_namespace("a")) == ["s1"]


def test_an_indexer_added_later_covers_existing_objects_and_later_changes() -> None:
    store = Store()
    store.put(svc("s1", "web", 1))
    store.put(svc("s2", "db", 2, namespace="b"))
    store.add_indexer("app", lambda o: [o["spec"]["app"]])
    assert names(store.by_index("app", "web")) == ["s1"]
    store.put(svc("s1", "db", 3))
    assert names(store.by_index("app", "db")) == ["s1", "s2"]
    store.remove("b/s2")
    assert names(store.by_index("app", "db")) == ["s1"]
    assert store.by_namespace("b") == []
    assert [key for key, _ in store.items()] == ["a/s1"]
