"""Store: keys, namespace/owner/custom indexes kept right across updates and deletes."""

from __future__ import annotations

import pytest

from flaggerpy.kube.api import Obj
from flaggerpy.kube.informer import Store


def pod(name: str, namespace: str = "a", owner: str | None = None, node: str = "n1") -> Obj:
    meta: dict[str, object] = {"name": name, "namespace": namespace, "resourceVersion": "1"}
    if owner:
        meta["ownerReferences"] = [
            {"uid": owner, "controller": True, "kind": "ReplicaSet", "name": "rs"},
            {"uid": "not-controller", "kind": "Thing", "name": "t"},
        ]
    return {"metadata": meta, "spec": {"nodeName": node}}


def names(objs: list[Obj]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def test_indexes_follow_updates_and_deletes() -> None:
    store = Store({"node": lambda o: [o["spec"]["nodeName"]]})
    store.put(pod("p1", owner="u1"))
    store.put(pod("p2", owner="u1", node="n2"))
    store.put(pod("p3", namespace="b"))
    store.put({"metadata": {"name": "cluster-wide"}, "spec": {"nodeName": "n1"}})
    assert store.keys() == ["a/p1", "a/p2", "b/p3", "cluster-wide"]
    assert names(store.by_namespace("a")) == ["p1", "p2"]
    assert names(store.by_owner("u1")) == ["p1", "p2"]
    assert store.by_owner("not-controller") == []
    assert names(store.by_index("node", "n1")) == ["cluster-wide", "p1", "p3"]

    old = store.put(pod("p1", owner="u2", node="n2"))
    assert old is not None and old["spec"]["nodeName"] == "n1"
    assert names(store.by_owner("u1")) == ["p2"]
    assert names(store.by_index("node", "n2")) == ["p1", "p2"]

    assert store.remove("a/p2") is not None
    assert store.remove("a/p2") is None
    assert store.by_owner("u1") == []
    assert store.get_by_name("a", "p1") is store.get("a/p1")
    assert store.get_by_name(None, "cluster-wide") is not None
    assert len(store) == 3 and "b/p3" in store


def test_indexer_added_later_covers_existing_objects_and_unknown_index_is_named() -> None:
    store = Store()
    store.put(pod("p1"))
    store.add_indexer("node", lambda o: [o["spec"]["nodeName"]])
    assert names(store.by_index("node", "n1")) == ["p1"]
    with pytest.raises(ValueError, match="already exists"):
        store.add_indexer("node", lambda o: [])
    with pytest.raises(KeyError, match="nope"):
        store.by_index("nope", "x")
