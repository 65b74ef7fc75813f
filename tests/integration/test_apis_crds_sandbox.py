"""The generated CRDs served by a Kubernetes API (the sandbox) with the real kubectl: Flagger manifests apply
unchanged, malformed ones are refused naming the field, and ``kubectl get canaries`` shows Flagger's columns."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from flaggerpy.apis.flagger import Canary
from flaggerpy.sandbox import Sandbox
from tests.integration.kubectl import run_kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"
FIXTURES = REPO / "tests" / "fixtures" / "flagger"
NAMESPACES = ("test", "istio-system", "flagger")


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, ready_delay=0.05) as sandbox:
        yield sandbox


async def kubectl(sb: Sandbox, *args: str, stdin: str | None = None) -> tuple[int, str]:
    """Exit code and everything kubectl printed."""
    result = await run_kubectl(sb, *args, stdin=stdin)
    return result.code, result.out + result.err


def columns(table: str) -> dict[str, str]:
    """The first row of a kubectl table by column name; kubectl aligns each value under its header."""
    header, row = table.splitlines()[:2]
    names = header.split()
    starts = [header.index(f" {name} ") + 1 if i else 0 for i, name in enumerate(names[:-1])]
    starts.append(header.rindex(names[-1]))
    ends = [*starts[1:], None]
    return {name: row[a:b].strip() for name, a, b in zip(names, starts, ends, strict=True)}


async def prepare(sb: Sandbox) -> None:
    code, out = await kubectl(sb, "apply", "-f", str(CRDS))
    assert code == 0, out
    namespaces = "".join(f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {n}\n" for n in NAMESPACES)
    code, out = await kubectl(sb, "apply", "-f", "-", stdin=namespaces)
    assert code == 0, out


async def test_flagger_manifests_apply_and_read_back(sb: Sandbox) -> None:
    await prepare(sb)
    code, out = await kubectl(sb, "apply", "-f", str(FIXTURES))
    assert code == 0, out
    for path in sorted(FIXTURES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] != "Canary":
                continue
            code, out = await kubectl(sb, "get", "canary", doc["metadata"]["name"], "-n", "test", "-o", "yaml")
            assert code == 0, out
            stored = yaml.safe_load(out)
            expected = {k: v for k, v in doc.items() if k != "status"}
            # The API server keeps the spec as written; the model reads it back to the same canary.
            assert stored["spec"] == expected["spec"]
            assert Canary.from_dict(stored).spec == Canary.from_dict(expected).spec


async def test_kubectl_get_shows_flagger_columns(sb: Sandbox) -> None:
    await prepare(sb)
    code, out = await kubectl(sb, "apply", "-f", str(FIXTURES / "podinfo-gatewayapi.yaml"))
    assert code == 0, out
    await sb.cluster.patch_status(
        "flagger.app", "canaries", "test", "podinfo", {"phase": "Progressing", "canaryWeight": 20}
    )
    code, out = await kubectl(sb, "get", "canaries", "-n", "test", "-o", "wide")
    assert code == 0, out
    header = out.splitlines()[0].split()
    assert header[:4] == ["NAME", "STATUS", "WEIGHT", "SUSPENDED"]
    assert {"FAILEDCHECKS", "INTERVAL", "MIRROR", "STEPWEIGHT", "STEPWEIGHTS", "MAXWEIGHT"} <= set(header)
    # Like kube-apiserver (checked against one by hack/fidelity.py): a CRD with printer columns gets no Age column.
    assert header[-2:] == ["HALTED", "LASTTRANSITIONTIME"]
    row = columns(out)
    assert row["NAME"] == "podinfo" and row["STATUS"] == "Progressing" and row["WEIGHT"] == "20"
    assert (row["INTERVAL"], row["STEPWEIGHT"], row["MAXWEIGHT"]) == ("1m", "10", "50")
    # Without -o wide kubectl leaves out the priority-1 columns, as against kube-apiserver.
    code, out = await kubectl(sb, "get", "canaries", "-n", "test")
    assert code == 0, out
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "WEIGHT", "HALTED", "LASTTRANSITIONTIME"]
    # A canary halted (here: for a route it does not own) says so beside its phase.
    await sb.cluster.patch_status("flagger.app", "canaries", "test", "podinfo", {
        "phase": "Initialized", "conditions": [{"type": "Halted", "status": "True", "reason": "RouteNotOwned",
                                                "message": "HTTPRoute test/podinfo exists and is not owned"}]})
    code, out = await kubectl(sb, "get", "canaries", "-n", "test")
    assert code == 0, out
    row = columns(out)
    assert (row["STATUS"], row["HALTED"]) == ("Initialized", "RouteNotOwned")


async def test_malformed_canary_is_refused_naming_the_field(sb: Sandbox) -> None:
    await prepare(sb)
    doc = next(yaml.safe_load_all((FIXTURES / "podinfo-gatewayapi.yaml").read_text()))
    doc["spec"]["service"]["port"] = "http"
    doc["spec"]["analysis"]["stepWeight"] = 0
    code, out = await kubectl(sb, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    assert code != 0
    assert "spec.service.port" in out
    assert "spec.analysis.stepWeight" in out
