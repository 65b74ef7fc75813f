"""The demo on a machine without the Gateway API CRD files and without Prometheus: it still completes a release."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flaggerpy.demo import manifests
from flaggerpy.demo.session import Demo, Options
from flaggerpy.demo.view import DemoState, PlainReporter


async def test_release_succeeds_with_schemaless_gateway_kinds_and_sandbox_promql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(manifests.GATEWAY_CRDS_ENV, raising=False)
    monkeypatch.setattr(manifests, "_CHECKOUT_CRDS", tmp_path / "no-such-checkout")
    out = io.StringIO()
    demo = Demo(Options(prometheus="sandbox", timeout=60), PlainReporter(DemoState("fresh machine", 3), out))
    outcome = await demo.run()
    text = out.getvalue()
    assert outcome.ok, text
    assert "serving Gateway API kinds without schema validation" in text
    assert "metrics: sandbox PromQL" in text
    assert "checks at canary 50%: request-success-rate=100.00 (min 99) ok" in text


def test_gateway_crds_directory_without_crds_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(FileNotFoundError, match="--gateway-crds: no CustomResourceDefinition in"):
        manifests.gateway_crds(tmp_path)
