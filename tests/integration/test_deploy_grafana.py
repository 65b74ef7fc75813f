"""deploy/grafana/flaggerpy.json: a valid dashboard whose every query uses metrics the controller really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flaggerpy import telemetry

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "flaggerpy.json"
METRIC = re.compile(r"\b(flagger(?:py)?_[a-z_]+)\b")


def exported_names() -> set[str]:
    """Sample names the telemetry registry exposes (histograms as _bucket/_sum/_count, counters as _total)."""
    recorder = telemetry.Recorder()
    names: set[str] = set()
    for family in recorder.registry.collect():
        names.add(family.name)
        names |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")
                  if family.type in ("counter", "histogram")}
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_dashboard_queries_only_use_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported_names()
    used = {name for expr in queries(dashboard) for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no flagger metric"
    assert used - known == set()
    # Flagger's own series and the controller's health are both on it.
    assert {"flagger_canary_status", "flagger_canary_weight", "flaggerpy_leader", "flaggerpy_api_errors_total"} <= used


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "flaggerpy"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "canary"}
    for expr in queries(dashboard):
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        for var in re.findall(r"\$(\w+)", expr):
            assert var in variables or var.startswith("__"), f"unknown variable ${var} in {expr}"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording rules offline: one rule per panel query, Grafana variables replaced by values.
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    substitutions = {"$__rate_interval": "5m", "$namespace": ".*", "$canary": ".*"}
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(DASHBOARD.parent)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    configmap = yaml.safe_load(result.stdout)
    assert configmap["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(configmap["data"]["flaggerpy.json"]) == json.loads(DASHBOARD.read_text())
