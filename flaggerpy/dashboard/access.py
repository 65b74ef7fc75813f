"""What the user's own credentials let the dashboard list, found by asking the API server, not by assuming.

Each resource is watched cluster-wide when the user may list it there; otherwise in each namespace where the user
may list canaries and that resource (Kubernetes' RBAC has no "the namespaces I can read", so the candidates are
the namespaces the user may list, else the ones given with ``-n`` and the kubeconfig context's). Nothing is ever
read with other credentials, so the dashboard shows no more than ``kubectl`` would show this user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.errors import Forbidden, NotFound

WATCHED: tuple[Resource, ...] = (res.CANARIES, res.EVENTS, res.HTTPROUTES_V1, res.DEPLOYMENTS)
# Events about Canaries only: the informer then holds a few per release, not the whole cluster's.
FIELD_SELECTORS = {res.EVENTS: "involvedObject.kind=Canary"}


@dataclass
class Scope:
    """Where each watched resource is listed: ``[None]`` cluster-wide, else namespaces; and what was refused."""

    namespaces: dict[Resource, list[str | None]] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)
    """``plural`` -> why some or all of it cannot be shown (forbidden, not served)."""

    @property
    def cluster_wide(self) -> bool:
        """Whether canaries are listed across all namespaces."""
        return self.namespaces.get(res.CANARIES) == [None]

    def describe(self) -> dict[str, object]:
        """The scope as the page shows it."""
        canaries = self.namespaces.get(res.CANARIES) or []
        return {"clusterWide": self.cluster_wide, "namespaces": [n for n in canaries if n], "denied": self.denied}


async def can_list(kube: KubeClient, resource: Resource, namespace: str | None) -> bool:
    """Whether a list of ``resource`` (one item) is allowed; False on 403 and when the type is not served."""
    try:
        await kube.request("list", resource, "GET", resource.path(namespace),
                           query={"limit": 1, "fieldSelector": FIELD_SELECTORS.get(resource)})
    except (Forbidden, NotFound):
        return False
    return True


async def _candidates(kube: KubeClient, fallback: list[str]) -> list[str]:
    try:
        listed, _ = await kube.list(res.NAMESPACES)
    except Forbidden:
        return sorted(set(fallback))
    return sorted({str((n.get("metadata") or {}).get("name")) for n in listed} | set(fallback))


async def discover(kube: KubeClient, fallback: list[str]) -> Scope:
    """The :class:`Scope` of the user behind ``kube``; ``fallback``: namespaces to try when not cluster-wide."""
    scope = Scope()
    if await can_list(kube, res.CANARIES, None):
        namespaces: list[str | None] = [None]
    else:
        namespaces = [ns for ns in await _candidates(kube, fallback) if await can_list(kube, res.CANARIES, ns)]
        scope.denied["canaries"] = ("not allowed to list canaries in all namespaces: showing "
                                    + (", ".join(n for n in namespaces if n) or "no namespace"))
    scope.namespaces[res.CANARIES] = namespaces
    for resource in WATCHED[1:]:
        if namespaces == [None] and await can_list(kube, resource, None):
            scope.namespaces[resource] = [None]
            continue
        allowed: list[str | None] = []
        refused: list[str] = []
        for ns in namespaces:
            if ns is not None and await can_list(kube, resource, ns):
                allowed.append(ns)
            else:
                refused.append(ns or "all namespaces")
        scope.namespaces[resource] = allowed
        if refused:
            scope.denied[resource.plural] = f"not allowed to list {resource.plural} in {', '.join(refused)}"
    return scope

