"""A cluster without KEDA: the controller runs exactly as before (no ScaledObject informer, releases go through),
and a Canary that references a ScaledObject waits with a condition saying the cluster does not serve them."""

from __future__ import annotations

from flaggerpy.canary import status as st
from flaggerpy.kube import resources as res
from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, wait_for
from tests.manifests import canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
FAST = {"interval": "200ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}


async def test_keda_absent_an_autoscaler_free_canary_still_releases(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    assert cluster.sb.keda is None
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    async with run_controller() as ctl:
        assert res.SCALEDOBJECTS not in ctl.informers
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Succeeded")
    assert not [e for e in events.events if e[1] == "Warning"]


async def test_keda_absent_a_scaled_object_reference_waits_naming_the_field(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, autoscalerRef={
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"}))
    async with run_controller():
        def message() -> str:
            return str((st.condition(cluster.status(), st.HALTED) or {}).get("message") or "")

        await wait_for(lambda: message().startswith("spec.autoscalerRef.kind: ScaledObject: the cluster did not serve"),
                       describe=lambda: f"status {cluster.status()}")
        await wait_for(lambda: any(type_ == "Warning" and "spec.autoscalerRef.kind" in m
                                   for _, type_, _, m in events.events))
        assert cluster.get("apps", "deployments", "podinfo-primary") is None
