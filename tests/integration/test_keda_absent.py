"""A cluster without KEDA: the controller runs exactly as before (no ScaledObject informer, releases go through),
and a Canary that references a ScaledObject waits with a condition saying the cluster does not serve them."""

from __future__ import annotations

from flaggerpy.canary import status as st
from flaggerpy.canary.controller import Controller
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from flaggerpy.sandbox.controllers import keda
from tests.integration.conftest import (
    CRD_GROUP,
    Cluster,
    ControllerFactory,
    RecordingEvents,
    RecordingNotifier,
    ScriptedAnalyzer,
    controller_settings,
    wait_for,
)
from tests.integration.test_keda_release import scaled_object
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
    # Nothing but Flagger's own Warnings for workloads still rolling out ("... not ready: waiting for rollout").
    assert not [e for e in events.events if e[1] == "Warning" and " not ready: " not in e[3]]


async def test_keda_absent_a_scaled_object_reference_waits_naming_the_field(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, autoscalerRef={
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"}))
    async with run_controller():
        def message() -> str:
            return str((st.condition(cluster.status(), st.HALTED) or {}).get("message") or "")

        served = "spec.autoscalerRef.kind: ScaledObject: the cluster does not serve"
        await wait_for(lambda: message().startswith(served),
                       describe=lambda: f"status {cluster.status()}")
        await wait_for(lambda: any(type_ == "Warning" and "spec.autoscalerRef.kind" in m
                                   for _, type_, _, m in events.events))
        assert cluster.get("apps", "deployments", "podinfo-primary") is None


async def test_keda_installed_after_the_controller_started_needs_no_restart(
    cluster: Cluster, kube: KubeClient, analyzer: ScriptedAnalyzer, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, autoscalerRef={
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"}))
    settings = controller_settings(optional_kind_recheck=0.2)
    async with Controller(kube, analyzer, RecordingNotifier(), events, settings) as ctl:
        def halted() -> str:
            return str((st.condition(cluster.status(), st.HALTED) or {}).get("message") or "")

        await wait_for(lambda: "does not serve" in halted(), describe=lambda: f"status {cluster.status()}")
        await cluster.create(CRD_GROUP, "customresourcedefinitions", keda.crd())
        await cluster.create("keda.sh", "scaledobjects", scaled_object())
        await cluster.wait_phase("Initialized")
        assert res.SCALEDOBJECTS in ctl.informers
    primary = cluster.get("keda.sh", "scaledobjects", "podinfo-primary")
    assert primary is not None and primary["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
