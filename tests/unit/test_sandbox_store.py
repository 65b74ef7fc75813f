"""The store: resourceVersions, bounded history, 410 Gone, owner index; the registry's version order."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.registry import Registry, version_priority
from flaggerpy.sandbox.apiserver.store import Store

KEY = ("", "configmaps")


def put(store: Store, name: str, event: str = "ADDED", owners: list[str] | None = None) -> int:
    rv = store.next_rv()
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": str(rv)}
    if owners:
        meta["ownerReferences"] = [{"uid": u} for u in owners]
    store.put(KEY, {"metadata": meta}, event)
    return rv


def test_history_replay_and_compaction() -> None:
    store = Store(history_size=5)
    rvs = [put(store, f"o{i}") for i in range(12)]
    assert [e.rv for e in store.events_after(KEY, rvs[-3])] == rvs[-2:]
    with pytest.raises(StatusError) as err:
        store.events_after(KEY, rvs[0])
    assert err.value.code == 410 and "too old resource version" in err.value.message
    assert store.events_after(("apps", "deployments"), rvs[-3]) == []


def test_events_are_encoded_once_per_api_version() -> None:
    store = Store()
    put(store, "a")
    event = store.events_after(KEY, 0)[0]
    first = event.encode("v1")
    assert event.encode("v1") is first
    assert b'"type":"ADDED"' in first and event.encode("v1", "DELETED").startswith(b'{"type":"DELETED"')


def test_old_history_keeps_no_encoded_lines_but_replays_the_same() -> None:
    store = Store(history_size=5000)
    put(store, "first")
    first = store.events_after(KEY, 0)[0]
    line = first.encode("v1")
    for i in range(1500):
        put(store, f"o{i}")
    assert first._encoded is None
    assert store.events_after(KEY, 0)[0].encode("v1") == line


def test_owner_index_follows_writes() -> None:
    store = Store()
    put(store, "owner")
    put(store, "child", owners=["uid-owner"])
    assert [o["metadata"]["name"] for _, o in store.dependents("uid-owner")] == ["child"]
    put(store, "child", "MODIFIED")
    assert store.dependents("uid-owner") == []
    assert store.exists_uid("uid-owner")


def test_subscribers_get_events_of_their_resource() -> None:
    store = Store()
    mine, everything = store.subscribe(KEY), store.subscribe(None)
    put(store, "a")
    store.put(("apps", "deployments"), {"metadata": {"name": "d", "uid": "u", "resourceVersion": "99"}}, "ADDED")
    assert len(mine) == 1 and len(everything) == 2


def test_version_priority_matches_kube() -> None:
    versions = ["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo"]
    assert sorted(versions, key=version_priority) == ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]


def test_registry_discovery_for_unknown_group() -> None:
    registry = Registry()
    assert registry.api_group("nope.example.com") is None
    assert registry.resource_list("apps", "v9") is None
    assert registry.resolve("apps", "v1", "deployments") is not None
