"""Arbitrary input never crashes the sandbox: every failure is a StatusError with a message."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "a", "web", "x-y", "/"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["metadata", "name", "labels", "spec", "status", "finalizers", "containers",
                                       "ownerReferences", "ports", "$patch", "replicas", "namespace", "uid"]),
                      children, max_size=4),
    max_leaves=12,
)


def _cluster() -> Cluster:
    cluster = Cluster()
    cluster.create_object(cluster.resource("", "namespaces"), "v1", "", {"metadata": {"name": "default"}})
    return cluster


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values, plural=st.sampled_from([("", "configmaps"), ("apps", "deployments"), ("", "services")]))
def test_create_and_update_answer_or_refuse(body: Any, plural: tuple[str, str]) -> None:
    cluster = _cluster()
    rt = cluster.resource(*plural)
    version = rt.versions[0]
    try:
        created = cluster.create_object(rt, version, "default", body)
    except StatusError as err:
        assert err.message and 400 <= err.code < 500
        return
    name = created["metadata"]["name"]
    try:
        cluster.update_object(rt, version, "default", name, body if isinstance(body, dict) else {})
    except StatusError as err:
        assert err.message and 400 <= err.code < 500


@settings(max_examples=80, deadline=None)
@given(original=json_values, patch=json_values)
def test_patches_answer_or_refuse(original: Any, patch: Any) -> None:
    for apply in (merge_patch, strategic_merge, json_patch):
        try:
            apply(original, patch)
        except StatusError as err:
            assert err.message
