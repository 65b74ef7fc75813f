"""The demo's objects: CRDs, a Gateway, the podinfo Deployment, its Canary and a MetricTemplate.

The Canary is Flagger's Gateway API tutorial shrunk to demo time: 10% steps to 50% every ``interval``, three
checks per step (the builtin success rate and P99 duration, and an Envoy error-rate MetricTemplate), rolled back
after ``threshold`` failed checks.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flaggerpy.apis.crds import build_crds

NAMESPACE = "test"
GATEWAY_NAMESPACE = "gateway"
GATEWAY_NAME = "public-gateway"
GATEWAY_CLASS = "sandbox"
GATEWAY_GROUP = "gateway.networking.k8s.io"
APP = "podinfo"
HOST = "podinfo.example.com"
IMAGE = "ghcr.io/stefanprodan/podinfo"
FIRST_VERSION = "6.0.1"
NEXT_VERSION = "6.0.2"
# The sandbox data plane's controller name and the pod-template annotation that makes its pods fail.
SANDBOX_GATEWAY_CONTROLLER = "sandbox.flaggerpy.io/gateway-controller"
ERROR_RATE_ANNOTATION = "sandbox.flaggerpy.io/error-rate"
FAULTY_ERROR_RATE = "0.3"
GATEWAY_CRDS_ENV = "FLAGGERPY_GATEWAY_CRDS"
# Where a checkout keeps the official Gateway API CRDs next to the repository.
_CHECKOUT_CRDS = Path(__file__).resolve().parents[3] / "shared" / "gateway-api-v1.6.1"
# libyaml when present: the Gateway API CRDs take seconds to parse in pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Kinds the sandbox data plane reads: all of them must be served, with or without the official schemas.
_GATEWAY_KINDS = (
    ("GatewayClass", "gatewayclasses", "Cluster"),
    ("Gateway", "gateways", "Namespaced"),
    ("HTTPRoute", "httproutes", "Namespaced"),
    ("GRPCRoute", "grpcroutes", "Namespaced"),
    ("ReferenceGrant", "referencegrants", "Namespaced"),
)


@dataclass(frozen=True)
class Timing:
    """How fast the release moves: analysis interval, failed checks tolerated and the metrics' query window."""

    interval: str = "2s"
    threshold: int = 3
    metric_window: str = "10s"
    progress_deadline: int = 60


@dataclass(frozen=True)
class CrdSource:
    """The Gateway API CRDs the demo installs and where they came from (``official`` is False for the fallback)."""

    documents: list[dict[str, Any]]
    origin: str
    official: bool


def flagger_crds() -> list[dict[str, Any]]:
    """Canary, MetricTemplate and AlertProvider CRDs, generated from the models (always available)."""
    return list(build_crds().values())


def gateway_crds(directory: str | Path | None = None) -> CrdSource:
    """The official Gateway API CRDs from ``directory``, ``$FLAGGERPY_GATEWAY_CRDS`` or a checkout's ``shared/``.

    Without them (a fresh machine) the kinds are served schemaless: the demo's objects are valid anyway, the
    apiserver just cannot reject invalid ones.

    FileNotFoundError naming ``--gateway-crds`` when ``directory`` is given but is no directory or holds no CRD;
    ValueError naming the source and the file when a candidate's YAML cannot be read.
    """
    if directory is not None and not Path(directory).is_dir():
        raise FileNotFoundError(f"--gateway-crds: {directory} is not a directory")
    sources = [("--gateway-crds", directory), (f"${GATEWAY_CRDS_ENV}", os.environ.get(GATEWAY_CRDS_ENV)),
               ("the checkout's CRDs", _CHECKOUT_CRDS)]
    candidates = [(label, Path(p)) for label, p in sources if p]
    for label, candidate in candidates:
        paths = sorted(candidate.glob("*.yaml")) if candidate.is_dir() else []
        try:
            docs = [doc for path in paths for doc in _documents(path) if isinstance(doc, dict)]
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
        if crds:
            return CrdSource(crds, str(candidate), official=True)
        if directory is not None and candidate == Path(directory):
            raise FileNotFoundError(f"--gateway-crds: no CustomResourceDefinition in {candidate}")
    return CrdSource([_schemaless_crd(*kind) for kind in _GATEWAY_KINDS], "built-in schemaless", official=False)


def _documents(path: Path) -> list[Any]:
    try:
        return list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or exc
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ValueError(f"{path} cannot be read as YAML: {problem}{where}") from None


def _schemaless_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GATEWAY_GROUP}"},
        "spec": {
            "group": GATEWAY_GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": scope,
            "versions": [
                {"name": version, "served": True, "storage": version == "v1", "schema": copy.deepcopy(schema),
                 "subresources": {"status": {}}}
                for version in ("v1", "v1beta1")
            ],
        },
    }


def namespaces() -> list[dict[str, Any]]:
    """The app's and the Gateway's namespaces."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            for name in (NAMESPACE, GATEWAY_NAMESPACE)]


def gateway_class() -> dict[str, Any]:
    """The GatewayClass the sandbox data plane implements."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": SANDBOX_GATEWAY_CONTROLLER},
    }


def gateway() -> dict[str, Any]:
    """A shared Gateway with one HTTP listener accepting routes from every namespace."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80,
                           "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    }


def image(version: str) -> str:
    """The podinfo image of ``version``."""
    return f"{IMAGE}:{version}"


def deployment(version: str = FIRST_VERSION) -> dict[str, Any]:
    """The podinfo Deployment at ``version``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"app": APP}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": "podinfod", "image": image(version),
                                         "ports": [{"name": "http", "containerPort": 9898}]}]},
            },
        },
    }


def next_revision(current: dict[str, Any], faulty: bool) -> dict[str, Any]:
    """``current`` with the image bumped to the next version; ``faulty`` makes its pods fail 30% of requests."""
    updated = copy.deepcopy(current)
    updated["metadata"].pop("resourceVersion", None)
    template = updated["spec"]["template"]
    template["spec"]["containers"][0]["image"] = image(NEXT_VERSION)
    annotations = template["metadata"].setdefault("annotations", {})
    if faulty:
        annotations[ERROR_RATE_ANNOTATION] = FAULTY_ERROR_RATE
    else:
        annotations.pop(ERROR_RATE_ANNOTATION, None)
    return updated


def metric_template(metrics_server: str) -> dict[str, Any]:
    """The percentage of 5xx answers from the canary's backend, as an Envoy-based Gateway exports it.

    ``or vector(0)``: while the canary is healthy there is no 5xx series at all, and "no data" would fail the check.
    """
    selector = 'envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"'
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": NAMESPACE},
        "spec": {
            "provider": {"type": "prometheus", "address": metrics_server},
            "query": (
                f'100 * (sum(rate(envoy_cluster_upstream_rq{{{selector}, envoy_response_code=~"5.."}}'
                f"[{{{{ interval }}}}])) or vector(0))\n/\n"
                f"sum(rate(envoy_cluster_upstream_rq{{{selector}}}[{{{{ interval }}}}]))"
            ),
        },
    }


def canary(metrics_server: str, timing: Timing) -> dict[str, Any]:
    """The podinfo Canary: Gateway API v1, 10% steps to 50%, three checks per step."""
    window = timing.metric_window
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {
            "provider": "gatewayapi:v1",
            "metricsServer": metrics_server,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "progressDeadlineSeconds": timing.progress_deadline,
            "service": {
                "port": 9898,
                "targetPort": 9898,
                "hosts": [HOST],
                "gatewayRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
            },
            "analysis": {
                "interval": timing.interval,
                "threshold": timing.threshold,
                "maxWeight": 50,
                "stepWeight": 10,
                "metrics": [
                    {"name": "request-success-rate", "interval": window, "thresholdRange": {"min": 99}},
                    {"name": "request-duration", "interval": window, "thresholdRange": {"max": 500}},
                    {"name": "error-rate", "interval": window, "templateRef": {"name": "error-rate"},
                     "thresholdRange": {"max": 1}},
                ],
            },
        },
    }
