"""Releases of a Canary whose ``autoscalerRef`` is a KEDA ScaledObject, on a sandbox with KEDA installed: the
primary gets its own ScaledObject, the canary's is paused at zero replicas whenever the canary is scaled down, and
each unusable reference waits with a condition and a Warning Event naming the field."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from flaggerpy.analysis.base import HookType
from flaggerpy.canary import status as st
from flaggerpy.kube import resources as res
from flaggerpy.sandbox import Sandbox
from tests.integration.conftest import (
    Cluster,
    ControllerFactory,
    RecordingEvents,
    ScriptedAnalyzer,
    integration_sandbox,
    wait_for,
)
from tests.integration.kubectl import kubectl
from tests.integration.test_deploy_rbac import allowed, load_rules, restricted_names, split
from tests.manifests import NAMESPACE, canary, deployment

NEW_IMAGE = "ghcr.io/stefanprodan/podinfo:6.0.1"
FAST = {"interval": "200ms", "threshold": 2, "maxWeight": 20, "stepWeight": 10}
KEDA = ("keda.sh", "scaledobjects")
PAUSED = "autoscaling.keda.sh/paused-replicas"
CANARY_QUERY = 'sum(rate(http_requests_total{app="podinfo-canary"}[1m]))'
PRIMARY_QUERY = 'sum(rate(http_requests_total{app="podinfo-primary"}[1m]))'


@pytest.fixture
async def sandbox(crd_docs: list[dict[str, Any]]) -> AsyncIterator[Sandbox]:
    """The integration sandbox of conftest, with KEDA installed."""
    async with integration_sandbox(crd_docs, keda=True) as sb:
        yield sb


def scaled_object(name: str = "podinfo", target: str = "podinfo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "triggers": [
                {"type": "prometheus", "name": "rps",
                 "metadata": {"serverAddress": "http://prometheus:9090", "threshold": "10", "query": CANARY_QUERY}},
                {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}},
            ],
            **spec,
        },
    }


def keda_canary(**ref: Any) -> dict[str, Any]:
    return canary(analysis=FAST, autoscalerRef={"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                                "name": "podinfo", **ref})


async def create_release(cluster: Cluster, canary_obj: dict[str, Any] | None = None,
                         target: str = "podinfo") -> None:
    """The podinfo Deployment, its ScaledObject (scaling ``target``) and a Canary (by default :func:`keda_canary`)."""
    await cluster.create("apps", "deployments", deployment())
    await cluster.create(*KEDA, scaled_object(target=target))
    await cluster.create("flagger.app", "canaries", canary_obj if canary_obj is not None else keda_canary())


def so(cluster: Cluster, name: str = "podinfo") -> dict[str, Any] | None:
    return cluster.get(*KEDA, name)


def paused_at(cluster: Cluster) -> str | None:
    obj = so(cluster)
    assert obj is not None
    return ((obj["metadata"].get("annotations")) or {}).get(PAUSED)


def replicas(cluster: Cluster, name: str = "podinfo") -> int:
    dep = cluster.get("apps", "deployments", name)
    assert dep is not None
    return int(dep["spec"]["replicas"])


def halted(cluster: Cluster) -> dict[str, Any] | None:
    return st.condition(cluster.status(), st.HALTED)


async def test_keda_release_gives_the_primary_its_scaled_object_and_pauses_the_canarys(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await create_release(cluster, keda_canary(
        primaryScalerQueries={"rps": PRIMARY_QUERY}, primaryScalerReplicas={"minReplicas": 3}))
    analyzer.gates[HookType.CONFIRM_PROMOTION] = False
    async with run_controller() as ctl:
        assert res.SCALEDOBJECTS in ctl.informers
        await cluster.wait_phase("Initialized")
        primary = so(cluster, "podinfo-primary")
        assert primary is not None
        assert primary["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
        assert primary["spec"]["triggers"][0]["metadata"]["query"] == PRIMARY_QUERY
        assert primary["spec"]["triggers"][1]["metadata"] == {"value": "60"}
        assert (primary["spec"]["minReplicaCount"], primary["spec"]["maxReplicaCount"]) == (3, 4)
        assert primary["metadata"]["ownerReferences"][0]["kind"] == "Canary"
        assert PAUSED not in (primary["metadata"].get("annotations") or {})
        # KEDA holds the canary at zero while flaggerpy keeps it down.
        await wait_for(lambda: paused_at(cluster) == "0" and replicas(cluster) == 0,
                       describe=lambda: f"paused {paused_at(cluster)!r}, replicas {replicas(cluster)}")
        # KEDA scales the primary by its own copy (at least primaryScalerReplicas.minReplicas).
        await wait_for(lambda: replicas(cluster, "podinfo-primary") == 3,
                       describe=lambda: f"primary replicas {replicas(cluster, 'podinfo-primary')}")

        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("WaitingPromotion")
        # During the analysis KEDA scales the canary again.
        assert paused_at(cluster) is None
        assert replicas(cluster) >= 1
        # A change of the canary's ScaledObject reaches the primary's copy when the release is promoted.
        target = so(cluster)
        assert target is not None
        target["spec"]["maxReplicaCount"] = 6
        await cluster.update(*KEDA, target)
        analyzer.gates[HookType.CONFIRM_PROMOTION] = True
        await cluster.wait_phase("Succeeded")
        await wait_for(lambda: paused_at(cluster) == "0" and replicas(cluster) == 0,
                       describe=lambda: f"paused {paused_at(cluster)!r}, replicas {replicas(cluster)}")
    primary = so(cluster, "podinfo-primary")
    assert primary is not None and primary["spec"]["maxReplicaCount"] == 6
    dep = cluster.get("apps", "deployments", "podinfo-primary")
    assert dep is not None and dep["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE


async def test_keda_rollback_pauses_the_canary_scaled_object(
    cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await create_release(cluster)
    async with run_controller():
        await cluster.wait_phase("Initialized")
        analyzer.metrics_pass = False
        await cluster.set_image(NEW_IMAGE)
        await wait_for(lambda: cluster.status().get("phase") == "Progressing" and paused_at(cluster) is None,
                       describe=lambda: f"phase {cluster.status().get('phase')}, paused {paused_at(cluster)!r}")
        await cluster.wait_phase("Failed")
        await wait_for(lambda: paused_at(cluster) == "0" and replicas(cluster) == 0,
                       describe=lambda: f"paused {paused_at(cluster)!r}, replicas {replicas(cluster)}")
    # Without primaryScalerQueries the queries are rewritten from the canary's to the primary's.
    primary = so(cluster, "podinfo-primary")
    assert primary is not None and primary["spec"]["triggers"][0]["metadata"]["query"] == PRIMARY_QUERY


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_keda_deleting_the_canary_collects_the_primary_scaled_object(
    sandbox: Sandbox, cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await create_release(cluster)
    async with run_controller():
        await cluster.wait_phase("Initialized")
        listed = await kubectl(sandbox, "get", "scaledobjects", "-n", NAMESPACE)
        assert "SCALETARGETNAME" in listed and "podinfo-primary" in listed
        got = yaml.safe_load(await kubectl(sandbox, "get", "so", "podinfo-primary", "-n", NAMESPACE, "-o", "yaml"))
        assert got["status"]["scaleTargetKind"] == "apps/v1.Deployment"
        await cluster.cluster.delete("flagger.app", "canaries", NAMESPACE, "podinfo")
        await wait_for(lambda: so(cluster, "podinfo-primary") is None, describe=lambda: "primary copy still there")
    assert so(cluster) is not None


async def test_keda_reference_added_to_an_initialised_canary_takes_effect_without_a_release(
    cluster: Cluster, run_controller: ControllerFactory
) -> None:
    await create_release(cluster, canary(analysis=FAST))
    async with run_controller():
        await cluster.wait_phase("Initialized")
        assert so(cluster, "podinfo-primary") is None
        obj = cluster.get("flagger.app", "canaries", "podinfo")
        assert obj is not None
        obj["spec"]["autoscalerRef"] = keda_canary()["spec"]["autoscalerRef"]
        await cluster.update("flagger.app", "canaries", obj)
        await wait_for(lambda: so(cluster, "podinfo-primary") is not None, describe=lambda: "no primary copy")
        # A copy deleted by hand comes back too.
        await cluster.cluster.delete(*KEDA, NAMESPACE, "podinfo-primary")
        await wait_for(lambda: so(cluster, "podinfo-primary") is not None, describe=lambda: "copy not re-created")
    primary = so(cluster, "podinfo-primary")
    assert primary is not None and primary["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
    assert cluster.status()["phase"] == "Initialized"


# -- bad input: a condition and a Warning Event naming the field, nothing half-applied ---------------------------


async def wait_halted(cluster: Cluster, events: RecordingEvents, reason: str, text: str) -> None:
    await wait_for(lambda: text in ((halted(cluster) or {}).get("message") or ""),
                   describe=lambda: f"halted {halted(cluster)}")
    assert (halted(cluster) or {}).get("reason") == reason
    await wait_for(lambda: any(type_ == "Warning" and why == reason and text in message
                               for _, type_, why, message in events.events),
                   describe=lambda: f"events {events.events}")


async def test_keda_missing_scaled_object_waits_until_it_exists(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", keda_canary())
    async with run_controller():
        await wait_halted(cluster, events, "AutoscalerNotFound",
                          "spec.autoscalerRef.name: ScaledObject test/podinfo not found")
        assert cluster.get("apps", "deployments", "podinfo-primary") is None
        await cluster.create(*KEDA, scaled_object())
        await cluster.wait_phase("Initialized")
    assert so(cluster, "podinfo-primary") is not None


async def test_keda_scaled_object_of_another_workload_is_refused(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await create_release(cluster, target="frontend")
    async with run_controller():
        await wait_halted(cluster, events, "InvalidAutoscaler",
                          "spec.autoscalerRef.name: ScaledObject test/podinfo scales Deployment/frontend")
        assert cluster.get("apps", "deployments", "podinfo-primary") is None
        assert so(cluster, "podinfo-primary") is None
        fixed = so(cluster)
        assert fixed is not None
        fixed["spec"]["scaleTargetRef"]["name"] = "podinfo"
        await cluster.update(*KEDA, fixed)
        await cluster.wait_phase("Initialized")


async def test_keda_primary_query_for_an_unknown_trigger_is_refused(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await create_release(cluster, keda_canary(primaryScalerQueries={"latency": PRIMARY_QUERY}))
    async with run_controller():
        await wait_halted(cluster, events, "InvalidAutoscaler",
                          "spec.autoscalerRef.primaryScalerQueries.latency: ScaledObject test/podinfo has no trigger "
                          "named 'latency'")
        assert so(cluster, "podinfo-primary") is None


async def test_keda_unknown_autoscaler_kind_is_an_invalid_spec(
    cluster: Cluster, run_controller: ControllerFactory, events: RecordingEvents
) -> None:
    await cluster.create("apps", "deployments", deployment())
    await cluster.create("flagger.app", "canaries", canary(analysis=FAST, autoscalerRef={
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler", "name": "podinfo"}))
    async with run_controller():
        await wait_for(lambda: (st.condition(cluster.status(), st.PROMOTED) or {}).get("reason") == st.INVALID_SPEC,
                       describe=lambda: f"status {cluster.status()}")
        message = (st.condition(cluster.status(), st.PROMOTED) or {}).get("message") or ""
        assert message.startswith("spec.autoscalerRef.kind: must be HorizontalPodAutoscaler or ScaledObject")
        await wait_for(lambda: any(type_ == "Warning" and message in m for _, type_, _, m in events.events))
        assert cluster.get("apps", "deployments", "podinfo-primary") is None


async def test_keda_requests_are_allowed_by_rbac_and_never_read_scaled_objects(
    sandbox: Sandbox, cluster: Cluster, run_controller: ControllerFactory, analyzer: ScriptedAnalyzer
) -> None:
    await create_release(cluster)
    sandbox.counters.reset()
    async with run_controller():
        await cluster.roll_out(NEW_IMAGE)
        await cluster.wait_phase("Succeeded")
        analyzer.metrics_pass = False
        await cluster.set_image("ghcr.io/stefanprodan/podinfo:6.0.2")
        await cluster.wait_phase("Failed")
    served = sandbox.counters.snapshot()
    verbs = set(served.get("scaledobjects.keda.sh") or {})
    # Created (the primary's copy; unchanged since, so never replaced), patched (pause/resume), listed and watched:
    # never read.
    assert verbs == {"create", "patch", "list", "watch"}, verbs
    rules, _ = load_rules()
    denied = [f"{verb} {name}" for name, by_verb in served.items() for verb in by_verb
              if split(name)[0] == "keda.sh" and not allowed(rules, verb, *split(name))]
    assert denied == []
    crd_names = restricted_names(rules, "get", "apiextensions.k8s.io", "customresourcedefinitions")
    assert crd_names is not None and "scaledobjects.keda.sh" in crd_names
