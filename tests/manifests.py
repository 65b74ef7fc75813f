"""Manifests the integration and end-to-end tests apply to the sandbox: a podinfo-like Deployment, a Gateway API
Canary and a Gateway, plus the CRDs (official Gateway API and flaggerpy's Flagger CRDs) they need."""

from __future__ import annotations

from typing import Any

import yaml

from tests.paths import GATEWAY_API_CRDS, REPO_ROOT

FLAGGER_CRDS = REPO_ROOT / "deploy" / "crds"
NAMESPACE = "test"
GATEWAY_NAMESPACE = "gateway"
GATEWAY_NAME = "public-gateway"


def host_of(name: str) -> str:
    """The hostname the canary ``name`` is served on."""
    return f"{name}.example.com"


def deployment(name: str = "podinfo", image: str = "ghcr.io/stefanprodan/podinfo:6.0.0", replicas: int = 2,
               namespace: str = NAMESPACE, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A podinfo-like Deployment selected by ``app: <name>``; pod-template ``annotations`` shape how the sandbox's
    pods answer (error rate, latency)."""
    template_meta: dict[str, Any] = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": template_meta,
                "spec": {"containers": [{"name": "podinfod", "image": image,
                                         "ports": [{"name": "http", "containerPort": 9898}]}]},
            },
        },
    }


def canary(name: str = "podinfo", analysis: dict[str, Any] | None = None, namespace: str = NAMESPACE,
           **spec: Any) -> dict[str, Any]:
    """A Gateway API Canary for the Deployment ``name`` on host ``<name>.example.com`` (default analysis: 10 → 50
    by 10, 1s interval, threshold 2)."""
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {
                "port": 9898,
                "targetPort": 9898,
                "hosts": [host_of(name)],
                "gatewayRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
            },
            "analysis": analysis if analysis is not None else {
                "interval": "1s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
            },
            **spec,
        },
    }


def gateway() -> dict[str, Any]:
    """A Gateway with one HTTP listener accepting routes from every namespace."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "gatewayClassName": "sandbox",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80,
                           "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }


def crd_documents() -> list[dict[str, Any]]:
    """The Gateway API v1.6.1 CRDs and, when present, flaggerpy's Flagger CRDs."""
    paths = sorted(GATEWAY_API_CRDS.glob("*.yaml"))
    if FLAGGER_CRDS.is_dir():
        paths += sorted(FLAGGER_CRDS.glob("*.yaml"))
    docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text())]
    return [doc for doc in docs if doc and doc.get("kind") == "CustomResourceDefinition"]
