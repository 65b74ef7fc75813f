"""What the user's own credentials let the dashboard list, found by asking the API server, not by assuming.

Each resource is watched cluster-wide when the user may list it there; otherwise in each namespace where the user
may list canaries and that resource (Kubernetes' RBAC has no "the namespaces I can read", so the candidates are
the namespaces the user may list, else the ones given with ``-n`` and the kubeconfig context's). Nothing is ever
read with other credentials, so the dashboard shows no more than ``kubectl`` would show this user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flaggerpy.ctl.common import NO_CRD
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


OK, FORBIDDEN, NOT_SERVED = "ok", "forbidden", "not served"


async def probe(kube: KubeClient, resource: Resource, namespace: str | None) -> str:
    """Whether a list of ``resource`` (one item) is allowed: OK, FORBIDDEN (403) or NOT_SERVED (404: no such type;
    a namespace that does not exist lists as empty)."""
    try:
        await kube.request("list", resource, "GET", resource.path(namespace),
                           query={"limit": 1, "fieldSelector": FIELD_SELECTORS.get(resource)})
    except Forbidden:
        return FORBIDDEN
    except NotFound:
        return NOT_SERVED
    return OK


async def _candidates(kube: KubeClient, fallback: list[str]) -> list[str]:
    try:
        listed, _ = await kube.list(res.NAMESPACES)
    except Forbidden:
        return sorted(set(fallback))
    return sorted({str((n.get("metadata") or {}).get("name")) for n in listed} | set(fallback))


async def discover(kube: KubeClient, fallback: list[str]) -> Scope:
    """The :class:`Scope` of the user behind ``kube``; ``fallback``: namespaces to try when not cluster-wide."""
    scope = Scope()
    first = await probe(kube, res.CANARIES, None)
    namespaces: list[str | None] = []
    if first == OK:
        namespaces = [None]
    elif first == NOT_SERVED:
        # The scope is found once, at start: say so, or the page waits for canaries that never come.
        scope.denied["canaries"] = f"{NO_CRD}; restart the dashboard once they are"
    else:
        namespaces = [ns for ns in await _candidates(kube, fallback) if await probe(kube, res.CANARIES, ns) == OK]
        scope.denied["canaries"] = ("not allowed to list canaries in all namespaces: showing "
                                    + (", ".join(n for n in namespaces if n) or "no namespace"))
    scope.namespaces[res.CANARIES] = namespaces
    for resource in WATCHED[1:]:
        found = await probe(kube, resource, None) if namespaces == [None] else None
        if found == OK:
            scope.namespaces[resource] = [None]
            continue
        if found == NOT_SERVED:
            scope.namespaces[resource] = []
            scope.denied[resource.plural] = f"the cluster does not serve {resource}"
            continue
        allowed: list[str | None] = []
        refused: list[str] = []
        for ns in namespaces:
            if ns is not None and await probe(kube, resource, ns) == OK:
                allowed.append(ns)
            else:
                refused.append(ns or "all namespaces")
        scope.namespaces[resource] = allowed
        if refused:
            scope.denied[resource.plural] = f"not allowed to list {resource.plural} in {', '.join(refused)}"
    return scope

