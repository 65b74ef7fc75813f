"""Gates, skipAnalysis, suspend, config tracking, revisions changing mid-analysis, concurrency and revertOnDeletion."""

from __future__ import annotations

import base64

from flaggerpy.analysis.base import HookType
from flaggerpy.canary.controller import Controller
from flaggerpy.kube import resources as res
from tests.integration.conftest import Cluster, ControllerFactory, RecordingEvents, ScriptedAnalyzer, wait_for
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
FAST = {"interval": "200ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}


def image_of(cluster: Cluster, name: str, plural: str = "deployments") -> str:
    dep = cluster.get("apps", plural, name)
    assert dep is not None
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_confirm_rollout_waits_then_starts(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    analyzer.gates[HookType.CONFIRM_ROLLOUT] = False
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Waiting")
        assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 0
        analyzer.gates[HookType.CONFIRM_ROLLOUT] = True
        await cluster.wait_phase("Succeeded")
    assert "Halt podinfo.test advancement waiting for approval confirm-rollout-gate" in events.messages("test/podinfo")


async def test_confirm_promotion_holds_at_max_weight(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    analyzer.gates[HookType.CONFIRM_PROMOTION] = False
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        status = await cluster.wait_phase("WaitingPromotion")
        assert status["canaryWeight"] == 20
        assert image_of(cluster, "podinfo-primary") != NEW_IMAGE
        analyzer.gates[HookType.CONFIRM_PROMOTION] = True
        await cluster.wait_phase("Succeeded")
    assert image_of(cluster, "podinfo-primary") == NEW_IMAGE


async def test_confirm_traffic_increase_holds_weight(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    analyzer.gates[HookType.CONFIRM_TRAFFIC_INCREASE] = False
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(lambda: any(c.get("reason") == "WaitingTrafficIncrease"
                                   for c in cluster.status().get("conditions") or []), 10)
        assert cluster.status()["canaryWeight"] == 0
        assert dict(cluster.route_weights())["podinfo-canary"] == 0
        analyzer.gates[HookType.CONFIRM_TRAFFIC_INCREASE] = True
        await cluster.wait_phase("Succeeded")


async def test_skip_analysis_promotes_without_checks(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, skipAnalysis=True))
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Succeeded")
    assert analyzer.metric_calls == []
    assert image_of(cluster, "podinfo-primary") == NEW_IMAGE


def image_of_cached(controller: Controller) -> str | None:
    """The image of the target Deployment as the controller's cache has it."""
    dep = controller.caches.get(res.DEPLOYMENTS, NAMESPACE, "podinfo")
    return None if dep is None else str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_suspended_canary_is_left_alone(cluster: Cluster, run_controller: ControllerFactory,
                                              events: RecordingEvents) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    async with run_controller() as controller:
        await cluster.wait_phase("Initialized")
        obj = cluster.canary()
        obj["spec"]["suspend"] = True
        await cluster.update("flagger.app", "canaries", obj)
        # The controller's own cache, not the store: the Deployment's watch event could otherwise reach a worker
        # before the Canary's does, and the worker would start a release the user had already suspended.
        await wait_for(lambda: (controller.caches.get(res.CANARIES, NAMESPACE, "podinfo") or {}).get(
            "spec", {}).get("suspend") is True, 10, lambda: "the controller never saw spec.suspend")
        await cluster.set_image(NEW_IMAGE)
        # Once the controller has seen the new image, the reconcile it queued has run when its queue is drained.
        await wait_for(lambda: image_of_cached(controller) == NEW_IMAGE, 10, lambda: "the controller never saw "
                       f"the new image: {image_of_cached(controller)}")
        await controller.queue.join()
        assert cluster.status()["phase"] == "Initialized"
        # Flagger's Event, once for this suspension however many reconciles saw it.
        assert events.messages("test/podinfo").count("skipping canary run as object is suspended") == 1
        obj = cluster.canary()
        obj["spec"]["suspend"] = False
        await cluster.update("flagger.app", "canaries", obj)
        await cluster.wait_phase("Succeeded")


async def test_config_change_is_a_new_revision_and_primary_uses_copies(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "podinfo-config", "namespace": "test"},
                                            "data": {"color": "blue"}})
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "podinfo-config"}}]
    await cluster.create("apps", "deployments", dep)
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    async with run_controller():
        status = await cluster.wait_phase("Initialized")
        assert list(status["trackedConfigs"]) == ["configmap/podinfo-config"]
        primary = cluster.get("apps", "deployments", "podinfo-primary")
        container = primary["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": "podinfo-config-primary"}}]
        assert cluster.get("", "configmaps", "podinfo-config-primary")["data"] == {"color": "blue"}
        cm = cluster.get("", "configmaps", "podinfo-config")
        cm["data"]["color"] = "green"
        await cluster.update("", "configmaps", cm)
        await wait_for(lambda: cluster.status().get("phase") == "Progressing", 10)
        # The primary keeps the old config until promotion.
        assert cluster.get("", "configmaps", "podinfo-config-primary")["data"] == {"color": "blue"}
        await cluster.wait_phase("Succeeded")
    assert cluster.get("", "configmaps", "podinfo-config-primary")["data"] == {"color": "green"}
    assert "New revision detected! Scaling up podinfo.test" in events.messages("test/podinfo")


async def test_revision_change_mid_analysis_restarts(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "300ms", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
    }))
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("canaryWeight") == 20, 10)
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
        await wait_for(lambda: "New revision detected! Restarting analysis for podinfo.test"
                       in events.messages("test/podinfo"), 5)
        await cluster.wait_phase("Succeeded")
    assert image_of(cluster, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.2"


async def test_max_concurrent_canaries_queues_new_revisions_in_order(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    names = ("first", "second", "third")
    for name in names:
        await cluster.create("apps", "deployments", deployment(name))
        await cluster.create("flagger.app", "canaries", canary(name, analysis={
            "interval": "300ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10,
        }))
    order: list[str] = []

    def observe() -> bool:
        active = [n for n in names if cluster.status(n).get("phase") in ("Progressing", "Promoting", "Finalising")]
        assert len(active) <= 1, active
        for n in active:
            if n not in order:
                order.append(n)
        return all(cluster.status(n).get("phase") == "Succeeded" for n in names)

    async with run_controller(max_concurrent_canaries=1):
        for name in names:
            await cluster.wait_phase("Initialized", name)
        for name in names:
            await cluster.set_image(NEW_IMAGE, name)
            # Wait until the controller has seen this revision (started, or queued) so arrival order is known.
            await wait_for(lambda n=name: cluster.status(n).get("phase") != "Initialized" or any(
                c.get("reason") == "MaxConcurrentCanaries" for c in cluster.status(n).get("conditions") or []), 5)
        await wait_for(observe, 30, lambda: str({n: cluster.status(n).get("phase") for n in names}))
    assert order == list(names)


async def test_revert_on_deletion_restores_the_target(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, revertOnDeletion=True))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        await wait_for(lambda: "finalizer.flagger.app" in (cluster.canary()["metadata"].get("finalizers") or []))
        await cluster.sb.cluster.delete("flagger.app", "canaries", "test", "podinfo")
        await wait_for(lambda: cluster.get("flagger.app", "canaries", "podinfo") is None, 10)
    assert cluster.get("apps", "deployments", "podinfo")["spec"]["replicas"] == 2
    apex = cluster.get("", "services", "podinfo")
    assert apex is not None and apex["spec"]["selector"] == {"app": "podinfo"}
    await wait_for(lambda: cluster.get("apps", "deployments", "podinfo-primary") is None, 5)
    route = cluster.get("gateway.networking.k8s.io", "httproutes", "podinfo")
    assert route is not None
    assert [b["name"] for b in route["spec"]["rules"][-1]["backendRefs"]] == ["podinfo"]


async def test_daemonset_canary_scales_with_a_node_selector(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    ds = deployment()
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    await cluster.create("apps", "daemonsets", ds)
    await cluster.create("flagger.app", "canaries", canary(
        analysis=FAST, targetRef={"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"}))
    selector = lambda: cluster.get("apps", "daemonsets", "podinfo")["spec"]["template"]["spec"].get(  # noqa: E731
        "nodeSelector")
    async with run_controller():
        await cluster.wait_phase("Initialized")
        assert selector() == {"flagger.app/scale-to-zero": "true"}
        assert cluster.get("apps", "daemonsets", "podinfo-primary") is not None
        ds = cluster.get("apps", "daemonsets", "podinfo")
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = NEW_IMAGE
        await cluster.update("apps", "daemonsets", ds)
        await cluster.wait_phase("Succeeded")
    primary = cluster.get("apps", "daemonsets", "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert "nodeSelector" not in primary["spec"]["template"]["spec"]
    assert selector() == {"flagger.app/scale-to-zero": "true"}
    # Scaling the DaemonSet up and down is not mistaken for a new revision.
    assert not any("Restarting analysis" in m for m in events.messages("test/podinfo"))


async def test_hpa_gets_a_primary_copy(cluster: Cluster, run_controller: ControllerFactory) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("autoscaling", "horizontalpodautoscalers", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                 "minReplicas": 2, "maxReplicas": 4},
    })
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, autoscalerRef={
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
        "primaryScalerReplicas": {"minReplicas": 3, "maxReplicas": 6},
    }))
    async with run_controller():
        await cluster.wait_phase("Initialized")
    hpa = cluster.get("autoscaling", "horizontalpodautoscalers", "podinfo-primary")
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "Canary"


async def annotate(cluster: Cluster, key: str, value: str) -> None:
    obj = cluster.canary()
    obj["metadata"].setdefault("annotations", {})[key] = value
    await cluster.update("flagger.app", "canaries", obj)


def manual_condition(cluster: Cluster) -> dict[str, str]:
    conditions = cluster.status().get("conditions") or []
    return next((c for c in conditions if c["type"] == "ManualRequests"), {})


async def test_manual_promote_abort_retry(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis={
        "interval": "30s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
    }))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        await annotate(cluster, "flaggerpy.io/promote", "r1")
        # Nothing to promote while idle: the request is recorded as ignored, not left to fire later.
        await wait_for(lambda: manual_condition(cluster).get("reason") == "Ignored", 5)
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("canaryWeight") == 10, 10)
        await annotate(cluster, "flaggerpy.io/abort", "r2")
        await cluster.wait_phase("Failed")
        assert manual_condition(cluster)["message"] == "promote=r1 abort=r2"
        assert cluster.route_weights() == [("podinfo-primary", 100), ("podinfo-canary", 0)]
        await annotate(cluster, "flaggerpy.io/retry", "r3")
        await wait_for(lambda: cluster.status().get("canaryWeight") == 10, 10)
        assert cluster.status()["phase"] == "Progressing"
        await annotate(cluster, "flaggerpy.io/promote", "r4")
        await cluster.wait_phase("Succeeded")
    assert image_of(cluster, "podinfo-primary") == NEW_IMAGE
    assert manual_condition(cluster)["message"] == "promote=r4 abort=r2 retry=r3"
    messages = events.messages("test/podinfo")
    assert "Rolling back podinfo.test manual abort requested (request r2)" in messages
    assert any(m.startswith("Ignoring manual promote of podinfo.test (request r1)") for m in messages)


async def test_secret_only_release_rolls_the_primary_once(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await cluster.create("", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                         "metadata": {"name": "podinfo-token", "namespace": "test"},
                                         "stringData": {"token": "one"}})
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "podinfo-token"}}]
    await cluster.create("apps", "deployments", dep)
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        before = cluster.get("apps", "deployments", "podinfo-primary")
        secret = cluster.get("", "secrets", "podinfo-token")
        secret["data"]["token"] = base64.b64encode(b"two").decode()
        await cluster.update("", "secrets", secret)
        await wait_for(lambda: cluster.status().get("phase") == "Progressing", 10)
        await cluster.wait_phase("Succeeded")
    after = cluster.get("apps", "deployments", "podinfo-primary")
    # Flagger's flagger-id: the pod template changes, so the pods restart and read the new value.
    ids = [d["spec"]["template"]["metadata"]["annotations"]["flagger-id"] for d in (before, after)]
    assert ids[0] != ids[1]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1  # one roll, not two
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert after["status"]["updatedReplicas"] == after["spec"]["replicas"]
    copied = cluster.get("", "secrets", "podinfo-token-primary")
    assert base64.b64decode(copied["data"]["token"]) == b"two"


async def test_image_release_rolls_the_primary_once(cluster: Cluster, run_controller: ControllerFactory) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        before = cluster.get("apps", "deployments", "podinfo-primary")
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Succeeded")
    after = cluster.get("apps", "deployments", "podinfo-primary")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
