"""Handles for the resource types flaggerpy reads and writes."""

from __future__ import annotations

from flaggerpy.kube.api import Resource

# core/v1
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS = Resource("", "v1", "events", "Event")
PODS = Resource("", "v1", "pods", "Pod")

# apps/v1
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet")

# autoscaling/v2
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")

# coordination.k8s.io/v1
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")

# events.k8s.io/v1
EVENTS_V1 = Resource("events.k8s.io", "v1", "events", "Event")

# apiextensions.k8s.io/v1
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False)

# flagger.app/v1beta1
CANARIES = Resource("flagger.app", "v1beta1", "canaries", "Canary")
METRICTEMPLATES = Resource("flagger.app", "v1beta1", "metrictemplates", "MetricTemplate")
ALERTPROVIDERS = Resource("flagger.app", "v1beta1", "alertproviders", "AlertProvider")

# gateway.networking.k8s.io
HTTPROUTES_V1 = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
HTTPROUTES_V1BETA1 = Resource("gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute")
GRPCROUTES_V1 = Resource("gateway.networking.k8s.io", "v1", "grpcroutes", "GRPCRoute")
GATEWAYS_V1 = Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway")

# keda.sh (optional: watched only where KEDA's CRD is installed)
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")

ALL: tuple[Resource, ...] = (
    NAMESPACES,
    SERVICES,
    CONFIGMAPS,
    SECRETS,
    EVENTS,
    PODS,
    DEPLOYMENTS,
    DAEMONSETS,
    HPAS,
    LEASES,
    EVENTS_V1,
    CRDS,
    CANARIES,
    METRICTEMPLATES,
    ALERTPROVIDERS,
    HTTPROUTES_V1,
    HTTPROUTES_V1BETA1,
    GRPCROUTES_V1,
    GATEWAYS_V1,
    SCALEDOBJECTS,
)


def by_kind(api_version: str, kind: str) -> Resource | None:
    """The well-known handle for an object's ``apiVersion``/``kind`` (e.g. a Canary's targetRef), if any."""
    for res in ALL:
        if res.api_version == api_version and res.kind == kind:
            return res
    return None
