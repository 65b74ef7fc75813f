"""The kinds the sandbox serves: built-in ones and those of every CustomResourceDefinition applied to it.

Objects are stored once per (group, plural) whatever version they were written in; the version in a request only
changes ``apiVersion`` on the way out (the CRD "None" conversion strategy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
StorageKey = tuple[str, str]

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key giving kube's version order: GA before beta before alpha, higher numbers first, others last."""
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


@dataclass(frozen=True)
class ResourceType:
    """One servable resource: its names, scope, versions and, for custom resources, schemas and columns."""

    group: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    versions: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    has_generation: bool = False
    custom: bool = False
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> StorageKey:
        """The storage key: objects of all versions live under it."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        """Whether ``/status`` is a separate subresource (main writes then ignore status)."""
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """``plural.group`` (``plural`` for core), as kube names resources in messages and counters."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{version}" if self.group else version

    def discovery_entries(self) -> list[dict[str, Any]]:
        """The APIResource entries for this resource and its subresources."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            # Namespaces are the one kind kube-apiserver serves without deletecollection.
            "verbs": [v for v in ALL_VERBS if v != "deletecollection" or self.key != ("", "namespaces")],
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in sorted(self.subresources):
            sub_kind = "Scale" if sub == "scale" else self.kind
            sub_entry: dict[str, Any] = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": sub_kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry["group"] = "autoscaling"
                sub_entry["version"] = "v1"
            entries.append(sub_entry)
        return entries


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: Iterable[str] = (),
    subresources: Iterable[str] = (),
    generation: bool = False,
    categories: Iterable[str] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        versions=(version,),
        short_names=tuple(short),
        categories=tuple(categories),
        subresources=frozenset(subresources),
        has_generation=generation,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _builtin("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"], subresources=["status"]),
    _builtin("", "v1", "services", "Service", short=["svc"], subresources=["status"], categories=["all"]),
    _builtin("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "events", "Event", short=["ev"]),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _builtin("", "v1", "pods", "Pod", short=["po"], subresources=["status"], categories=["all"]),
    _builtin("", "v1", "endpoints", "Endpoints", short=["ep"]),
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    _builtin("events.k8s.io", "v1", "events", "Event", short=["ev"]),
    _builtin(
        "apps", "v1", "deployments", "Deployment", short=["deploy"], subresources=["status", "scale"],
        generation=True, categories=["all"],
    ),
    _builtin(
        "apps", "v1", "daemonsets", "DaemonSet", short=["ds"], subresources=["status"], generation=True,
        categories=["all"],
    ),
    _builtin(
        "apps", "v1", "replicasets", "ReplicaSet", short=["rs"], subresources=["status", "scale"],
        generation=True, categories=["all"],
    ),
    _builtin(
        "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short=["hpa"],
        subresources=["status"], generation=True, categories=["all"],
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    # Stored, not enforced: deploy/ ships them (availability and egress), and kubectl apply -k must succeed here.
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"], subresources=["status"],
             generation=True),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=["netpol"], generation=True),
    _builtin(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
        namespaced=False, short=["crd", "crds"], subresources=["status"], generation=True,
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
)

CRDS: StorageKey = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES: StorageKey = ("", "namespaces")


def resource_type_from_crd(crd: dict[str, Any]) -> ResourceType:
    """The ResourceType a (validated) CustomResourceDefinition object describes."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    versions = tuple(sorted((v["name"] for v in served), key=version_priority))
    subresources: set[str] = set()
    schemas: dict[str, dict[str, Any]] = {}
    columns: dict[str, list[dict[str, Any]]] = {}
    for v in served:
        subresources.update((v.get("subresources") or {}).keys())
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema:
            schemas[v["name"]] = schema
        columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
    return ResourceType(
        group=spec["group"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        versions=versions,
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=frozenset(subresources),
        has_generation=True,
        custom=True,
        schemas=schemas,
        printer_columns=columns,
    )


class Registry:
    """Resolves (group, version, plural) to a ResourceType and answers discovery."""

    def __init__(self) -> None:
        self._types: dict[StorageKey, ResourceType] = {rt.key: rt for rt in BUILTINS}

    def get(self, group: str, plural: str) -> ResourceType | None:
        """The resource stored under (group, plural), any version."""
        return self._types.get((group, plural))

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource if it is served at that version."""
        rt = self._types.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    def put(self, rt: ResourceType) -> None:
        """Serve a custom resource (or replace how it is served after its CRD changed)."""
        self._types[rt.key] = rt

    def remove(self, key: StorageKey) -> None:
        """Stop serving a custom resource."""
        rt = self._types.get(key)
        if rt is not None and rt.custom:
            del self._types[key]

    def types(self) -> list[ResourceType]:
        """Every resource served now."""
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Every non-core group and its served versions, preferred first."""
        groups: dict[str, set[str]] = {}
        for rt in self._types.values():
            if rt.group:
                groups.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(groups.items())}

    def api_group(self, group: str) -> dict[str, Any] | None:
        """The APIGroup discovery object for one group, or None when nothing is served in it."""
        versions = self.group_versions().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
                "preferredVersion": entries[0]}

    def api_group_list(self) -> dict[str, Any]:
        """The APIGroupList served at ``/apis``."""
        groups = [self.api_group(g) for g in self.group_versions()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        """The APIResourceList for one group/version, or None when nothing is served there."""
        resources: list[dict[str, Any]] = []
        for rt in sorted(self._types.values(), key=lambda r: r.plural):
            if rt.group == group and version in rt.versions:
                resources.extend(rt.discovery_entries())
        if not resources:
            return None
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}
