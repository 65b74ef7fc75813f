"""Patch semantics: JSON patch, JSON merge patch and strategic merge patch as Kubernetes applies them."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge

POD_SPEC = {
    "containers": [
        {"name": "app", "image": "app:1", "ports": [{"containerPort": 80, "name": "http"}],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "envoy:1"},
    ],
    "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
}


def test_merge_patch_merges_objects_and_null_deletes() -> None:
    original = {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}
    assert merge_patch(original, {"a": {"b": None, "d": 3}, "list": [3]}) == {
        "a": {"c": 2, "d": 3}, "list": [3], "keep": True}
    assert original == {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}, "input untouched"


def test_json_patch_operations() -> None:
    doc = {"spec": {"items": [1, 2], "x": "y"}}
    patched = json_patch(doc, [
        {"op": "add", "path": "/spec/items/-", "value": 3},
        {"op": "replace", "path": "/spec/x", "value": "z"},
        {"op": "copy", "from": "/spec/x", "path": "/spec/copy"},
        {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
        {"op": "remove", "path": "/spec/items/0"},
        {"op": "test", "path": "/spec/moved", "value": "z"},
        {"op": "add", "path": "/metadata~1name", "value": "escaped"},
    ])
    assert patched == {"spec": {"items": [2, 3], "x": "z", "moved": "z"}, "metadata/name": "escaped"}
    assert doc == {"spec": {"items": [1, 2], "x": "y"}}


@pytest.mark.parametrize("ops, problem", [
    ([{"op": "remove", "path": "/missing"}], "nonexistent"),
    ([{"op": "replace", "path": "/b", "value": 1}], "missing key"),
    ([{"op": "add", "path": "/x/y", "value": 1}], "does not exist"),
    ([{"op": "test", "path": "/a", "value": 2}], "test operation failed"),
    ([{"op": "frobnicate", "path": "/a"}], "unknown op"),
    ([{"path": "/a"}], "needs 'op' and 'path'"),
])
def test_json_patch_errors_name_the_problem(ops: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(StatusError) as err:
        json_patch({"a": 1}, ops)
    assert err.value.code == 422 and problem in err.value.message


def test_strategic_merge_merges_containers_env_and_ports_by_key() -> None:
    patch = {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}],
                             "ports": [{"containerPort": 9090, "name": "metrics"}]}]}
    merged = strategic_merge(POD_SPEC, patch)
    app, sidecar = merged["containers"]
    assert app["image"] == "app:2" and sidecar == {"name": "sidecar", "image": "envoy:1"}
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert [p["containerPort"] for p in app["ports"]] == [80, 9090]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge(POD_SPEC, {"containers": [{"name": "sidecar", "$patch": "delete"}]})
    assert [c["name"] for c in deleted["containers"]] == ["app"]
    replaced = strategic_merge(POD_SPEC, {"volumes": [{"name": "new", "emptyDir": {}}, {"$patch": "replace"}]})
    assert replaced["volumes"] == [{"name": "new", "emptyDir": {}}]
    ordered = strategic_merge(POD_SPEC, {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                                         "containers": [{"name": "app", "image": "app:3"}]})
    assert [c["name"] for c in ordered["containers"]] == ["sidecar", "app"]
    assert not any(k.startswith("$") for k in ordered)
    pruned = strategic_merge({"a": 1, "b": 2}, {"$retainKeys": ["a"], "a": 5})
    assert pruned == {"a": 5}
    finalizers = strategic_merge({"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]})
    assert finalizers == {"finalizers": ["b"]}
    assert strategic_merge({"finalizers": ["a"]}, {"finalizers": ["b", "a"]}) == {"finalizers": ["a", "b"]}


def test_strategic_merge_service_ports_use_port_as_key() -> None:
    svc = {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}]}
    merged = strategic_merge(svc, {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "name": "https"}]})
    assert merged["ports"] == [{"port": 80, "targetPort": 9090, "name": "http"}, {"port": 443, "name": "https"}]


def test_strategic_merge_replaces_lists_without_merge_key() -> None:
    merged = strategic_merge({"args": ["a", "b"], "tolerations": [{"key": "x"}]}, {"args": ["c"]})
    assert merged == {"args": ["c"], "tolerations": [{"key": "x"}]}
