"""The sandbox's token users: registered tokens are authorised by the cluster's RBAC objects, like kube-apiserver's
RBAC authoriser; every other request stays the administrator's."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import Forbidden
from flaggerpy.sandbox import Sandbox

RBAC = "rbac.authorization.k8s.io"


async def test_a_registered_user_gets_what_its_bindings_allow_and_a_403_for_the_rest(tmp_path: Path) -> None:
    async with Sandbox(workloads=False, dataplane=False) as sb:
        for name in ("team-a", "team-b"):
            await sb.cluster.create("", "namespaces", {"metadata": {"name": name}})
            await sb.cluster.create("", "configmaps", {"metadata": {"name": "cfg", "namespace": name}})
        await sb.cluster.create(RBAC, "clusterroles", {
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
        await sb.cluster.create(RBAC, "rolebindings", {
            "metadata": {"name": "alice-reads", "namespace": "team-a"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cm-reader"},
            "subjects": [{"kind": "User", "name": "alice"}]})
        await sb.cluster.create(RBAC, "roles", {
            "metadata": {"name": "ns-writer", "namespace": "team-b"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["cfg"]}]})
        await sb.cluster.create(RBAC, "rolebindings", {
            "metadata": {"name": "writers", "namespace": "team-b"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "ns-writer"},
            "subjects": [{"kind": "Group", "name": "writers"}]})
        alice = sb.user_kubeconfig(tmp_path / "alice", "alice-token", "alice", groups=["writers"])
        async with KubeClient(kubeconfig=str(alice)) as kube:
            listed, _ = await kube.list(res.CONFIGMAPS, "team-a")
            assert [c["metadata"]["name"] for c in listed] == ["cfg"]
            with pytest.raises(Forbidden) as denied:
                await kube.list(res.CONFIGMAPS)
            assert str(denied.value).endswith('configmaps is forbidden: User "alice" cannot list resource '
                                              '"configmaps" in API group "" at the cluster scope')
            with pytest.raises(Forbidden):
                await kube.patch(res.CONFIGMAPS, "cfg", "team-a", {"data": {"a": "b"}})
            # Through the group binding: any verb, but only on the object named in resourceNames.
            await kube.patch(res.CONFIGMAPS, "cfg", "team-b", {"data": {"a": "b"}})
            with pytest.raises(Forbidden, match='in the namespace "team-b"'):
                await kube.list(res.CONFIGMAPS, "team-b")
        # The sandbox's own kubeconfig is still the administrator.
        async with KubeClient(kubeconfig=str(sb.kubeconfig_path)) as admin:
            listed, _ = await admin.list(res.CONFIGMAPS)
            assert len(listed) == 2
