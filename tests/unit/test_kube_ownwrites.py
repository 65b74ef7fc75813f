"""The watch echo of the engine's own write is recognised; other changes are not mistaken for one."""

from __future__ import annotations

from typing import Any

from flaggerpy.canary.handlers import only_status_changed
from flaggerpy.kube import resources as res
from flaggerpy.kube.ownwrites import OwnWrites


def deployment(rv: str, replicas: int = 1, ready: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": rv, "generation": replicas},
            "spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}


def test_exactly_the_written_version_is_an_echo() -> None:
    own = OwnWrites()
    own.remember(res.DEPLOYMENTS, deployment("7"))
    assert own.is_echo(res.DEPLOYMENTS, deployment("7"))
    assert not own.is_echo(res.DEPLOYMENTS, deployment("8", ready=1))  # the API server's status update after it
    assert not own.is_echo(res.SERVICES, deployment("7"))  # another kind with the same name
    own.forget(res.DEPLOYMENTS, deployment("7"))
    assert not own.is_echo(res.DEPLOYMENTS, deployment("7"))


def test_objects_without_a_version_are_never_echoes() -> None:
    own = OwnWrites()
    own.remember(res.DEPLOYMENTS, {"metadata": {"name": "podinfo", "namespace": "test"}})
    assert not own.is_echo(res.DEPLOYMENTS, {"metadata": {"name": "podinfo", "namespace": "test"}})


def test_status_only_updates_are_told_apart_from_edits() -> None:
    assert only_status_changed(deployment("7"), deployment("8", ready=1))
    assert not only_status_changed(deployment("7"), deployment("8", replicas=2))
    relabelled = deployment("8")
    relabelled["metadata"]["labels"] = {"app": "x"}
    assert not only_status_changed(deployment("7"), relabelled)
