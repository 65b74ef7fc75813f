"""The sandbox answers like kube-apiserver wherever the controller or a user's kubectl depends on it: the
differential replay of hack/fidelity.py, on the session's real cluster, for the contract points that agree today
(the others are listed, with the reason, in the README's sandbox section)."""

from __future__ import annotations

import json
import sys

import pytest
import pytest_asyncio

from tests.paths import REPO_ROOT
from tests.real.harness import RealSession

sys.path.insert(0, str(REPO_ROOT / "hack"))
from fidelity import replay_on
from fidelity_corpus import AGREED, CASES


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def report(real_session: RealSession) -> dict:
    """One replay of the agreed cases for the module."""
    return await replay_on(real_session.plane, [c for c in CASES if c.name in AGREED])


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", sorted(AGREED))
async def test_the_sandbox_answers_like_kube_apiserver(report: dict, name: str) -> None:
    [result] = [r for r in report["cases"] if r["name"] == name]
    assert result["identical"], json.dumps(result.get("differences") or result.get("errors"), indent=1)[:4000]
