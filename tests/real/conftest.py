"""Fixtures of the `real` suite: the sandbox suite's fixture names (``cluster``, ``kube``, ``run_controller``, ...)
backed by one real control plane for the whole run (hack/cluster), so integration scenarios imported here run on
kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok unchanged.

Without a cached build the suite is skipped with the reason, unless ``FLAGGERPY_REAL_REQUIRED`` is set (CI builds
first and sets it, so a broken build fails instead of skipping).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flaggerpy.kube.api import KubeClient
from tests.integration.conftest import (
    analyzer,
    crd_docs,
    events,
    notifier,
    run_controller,
)
from tests.real.harness import REQUIRED_ENV, RealCluster, RealSession, start_session, why_unavailable

__all__ = ["analyzer", "crd_docs", "events", "notifier", "real_session", "run_controller"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/real is marked ``real``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def real_session() -> Iterator[RealSession]:
    """The session's real cluster (started on first use, stopped at the end of the run)."""
    reason = why_unavailable()
    if reason is not None:
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(f"the real suite is required ({REQUIRED_ENV}) but cannot run: {reason}")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="flaggerpy-real-") as tmp:
        yield from start_session(Path(tmp))


@pytest.fixture
async def admin(real_session: RealSession) -> AsyncIterator[KubeClient]:
    """A cluster-admin client (arranging and observing tests)."""
    async with KubeClient(kubeconfig=str(real_session.admin_kubeconfig)) as client:
        yield client


@pytest.fixture
async def cluster(real_session: RealSession, admin: KubeClient) -> AsyncIterator[RealCluster]:
    """Helpers over the real cluster's ``test`` namespace, emptied after the test."""
    helper = RealCluster(real_session, admin)
    await helper.start()
    try:
        yield helper
    finally:
        await helper.stop()
        real_session.clean_namespace()


@pytest.fixture
async def kube(real_session: RealSession) -> AsyncIterator[KubeClient]:
    """The controller's client: its own ServiceAccount token, authorised by deploy/rbac only. A request the API
    server refuses with 403 fails the test, whether or not the scenario noticed."""
    forbidden: list[str] = []

    def observe(verb: str, resource: str, status: int, seconds: float) -> None:
        if status == 403:
            forbidden.append(f"{verb} {resource}")

    async with KubeClient(kubeconfig=str(real_session.controller_kubeconfig), on_request=observe) as client:
        yield client
    assert not forbidden, f"deploy/rbac does not allow what the controller did: {sorted(set(forbidden))}"
