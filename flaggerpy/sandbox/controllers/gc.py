"""Garbage collection by ownerReferences, as kube-controller-manager's garbage collector does it.

Background propagation (the default): when an owner goes, each dependent whose owners are now all gone is deleted,
recursively; a dependent that still has a live owner only loses the reference. Orphan propagation strips the
reference and keeps the dependent. Foreground propagation is treated as Background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flaggerpy.sandbox.apiserver.cluster import Cluster


def remember_orphan(cluster: Cluster, uid: str) -> None:
    """An owner deleted with ``propagationPolicy=Orphan`` that waits on finalizers keeps that policy."""
    cluster.orphans.add(uid)


def collect(cluster: Cluster, uid: str, orphan: bool = False) -> None:
    """Handle the dependents of the owner ``uid``, which has just been removed."""
    orphan = orphan or uid in cluster.orphans
    cluster.orphans.discard(uid)
    for key, dependent in cluster.store.dependents(uid):
        rt = cluster.registry.get(*key)
        if rt is None:
            continue
        meta = dependent["metadata"]
        remaining = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
        has_live_owner = any(cluster.store.exists_uid(str(r.get("uid"))) for r in remaining)
        if orphan or has_live_owner:
            updated = dict(dependent)
            updated["metadata"] = {k: v for k, v in meta.items() if k != "ownerReferences"}
            if remaining:
                updated["metadata"]["ownerReferences"] = remaining
            cluster.commit_update(rt, dependent, updated)
        elif not meta.get("deletionTimestamp"):
            cluster.delete_object(rt, meta.get("namespace", ""), meta["name"])
