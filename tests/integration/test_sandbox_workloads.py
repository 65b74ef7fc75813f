"""The workload simulator: Deployments and DaemonSets become ready (or never do) like on a real cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flaggerpy.sandbox import READY_ANNOTATION, READY_DELAY_ANNOTATION, Sandbox


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.05) as sandbox:
        yield sandbox


def deployment(
    name: str = "web", replicas: int = 2, annotations: dict[str, str] | None = None, deadline: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
        },
    }
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


async def wait_status(sb: Sandbox, plural: str, name: str, done: Any) -> dict[str, Any]:
    """Wait (event-driven) until ``done(status)`` holds."""
    sub = sb.cluster.store.subscribe(("apps", plural))
    try:
        current = sb.cluster.get("apps", plural, "default", name)
        if current is not None and done(current.get("status") or {}):
            return current
        while True:
            event = await asyncio.wait_for(sub.get(), 5.0)
            assert event is not None, "subscription closed"
            if event.obj["metadata"]["name"] == name and done(event.obj.get("status") or {}):
                return event.obj
    finally:
        sub.close()


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def test_deployment_becomes_ready_after_the_delay(sb: Sandbox) -> None:
    created = await sb.cluster.create("apps", "deployments", deployment())
    obj = await wait_status(sb, "deployments", "web", lambda s: s.get("readyReplicas") == 2)
    status = obj["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 2
    assert "unavailableReplicas" not in status
    assert condition(status, "Available")["status"] == "True"
    assert condition(status, "Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_new_revision_is_unready_until_rolled_out(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment())
    await wait_status(sb, "deployments", "web", lambda s: s.get("readyReplicas") == 2)
    await sb.cluster.patch(
        "apps",
        "deployments",
        "default",
        "web",
        {"spec": {"template": {"metadata": {"annotations": {READY_DELAY_ANNOTATION: "300ms"}}}}},
    )
    rolling = await wait_status(sb, "deployments", "web", lambda s: s.get("observedGeneration") == 2)
    # A rolling update: no pod of the new template is ready yet, the old pods keep serving meanwhile.
    assert rolling["status"].get("updatedReplicas", 0) == 0
    assert rolling["status"].get("readyReplicas", 0) == 2
    assert condition(rolling["status"], "Progressing")["reason"] == "ReplicaSetUpdated"
    await wait_status(
        sb, "deployments", "web", lambda s: s.get("observedGeneration") == 2 and s.get("updatedReplicas") == 2
    )


async def test_a_crash_looping_new_template_leaves_the_old_pods_serving(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment(deadline=0))
    await wait_status(sb, "deployments", "web", lambda s: s.get("readyReplicas") == 2)
    crash = {"spec": {"template": {"metadata": {"annotations": {READY_ANNOTATION: "false"}}}}}
    await sb.cluster.patch("apps", "deployments", "default", "web", crash)
    stuck = await wait_status(
        sb,
        "deployments",
        "web",
        lambda s: any(c.get("reason") == "ProgressDeadlineExceeded" for c in s.get("conditions", [])),
    )
    assert stuck["status"].get("updatedReplicas", 0) == 0
    assert stuck["status"].get("readyReplicas", 0) == 2


async def test_never_ready_annotation_hits_the_progress_deadline(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment(annotations={READY_ANNOTATION: "false"}, deadline=0))
    obj = await wait_status(
        sb,
        "deployments",
        "web",
        lambda s: any(c.get("reason") == "ProgressDeadlineExceeded" for c in s.get("conditions", [])),
    )
    assert obj["status"].get("readyReplicas", 0) == 0
    assert condition(obj["status"], "Progressing")["status"] == "False"


async def test_scale_to_zero_is_ready_at_once(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment(replicas=0))
    obj = await wait_status(sb, "deployments", "web", lambda s: s.get("observedGeneration") == 1)
    assert obj["status"].get("replicas", 0) == 0
    assert condition(obj["status"], "Available")["status"] == "True"


async def test_daemonset_schedules_on_matching_nodes(sb: Sandbox) -> None:
    ds = deployment("agent")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    await sb.cluster.create("apps", "daemonsets", ds)
    obj = await wait_status(sb, "daemonsets", "agent", lambda s: s.get("numberReady") == 1)
    assert obj["status"]["desiredNumberScheduled"] == 1
    await sb.cluster.patch(
        "apps",
        "daemonsets",
        "default",
        "agent",
        {"spec": {"template": {"spec": {"nodeSelector": {"no-such-node": "true"}}}}},
    )
    obj = await wait_status(sb, "daemonsets", "agent", lambda s: s.get("observedGeneration") == 2)
    assert obj["status"]["desiredNumberScheduled"] == 0


async def test_malformed_workload_does_not_stop_the_simulator(sb: Sandbox) -> None:
    await sb.cluster.create("apps", "deployments", deployment("broken"))
    broken = sb.cluster.get("apps", "deployments", "default", "broken")
    assert broken is not None
    broken["status"] = 5
    sb.cluster.update_object(sb.cluster.resource("apps", "deployments"), "v1", "default", "broken", broken, "status")
    await sb.cluster.patch("apps", "deployments", "default", "broken", {"spec": {"replicas": 3}})
    await sb.cluster.create("apps", "deployments", deployment("healthy"))
    await wait_status(sb, "deployments", "healthy", lambda s: s.get("readyReplicas") == 2)


async def test_hpa_reports_replicas_within_its_bounds(sb: Sandbox) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 3, "maxReplicas": 5}}
    await sb.cluster.create("autoscaling", "horizontalpodautoscalers", hpa)
    await sb.cluster.create("apps", "deployments", deployment(replicas=2))

    async def hpa_status(check: Any) -> dict[str, Any]:
        sub = sb.cluster.store.subscribe(("autoscaling", "horizontalpodautoscalers"))
        try:
            while True:
                current = sb.cluster.get("autoscaling", "horizontalpodautoscalers", "default", "web")
                if current is not None and check(current.get("status") or {}):
                    return current["status"]
                await asyncio.wait_for(sub.get(), 5.0)
        finally:
            sub.close()

    status = await hpa_status(lambda s: s.get("currentReplicas") == 2)
    assert status["desiredReplicas"] == 3
    await sb.cluster.patch("apps", "deployments", "default", "web", {"spec": {"replicas": 0}})
    status = await hpa_status(lambda s: s.get("currentReplicas") == 0)
    assert status["desiredReplicas"] == 0
    assert any(c["reason"] == "ScalingDisabled" for c in status["conditions"])
