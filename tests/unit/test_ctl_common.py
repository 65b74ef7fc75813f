"""Shared CLI behaviour: the namespace default from the kubeconfig context, usage errors, command registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaggerpy.cli import COMMANDS
from flaggerpy.cli import main as cli_main
from flaggerpy.ctl.common import context_namespace

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: dev
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts:
  - {name: dev, context: {cluster: c, user: u, namespace: team-a}}
  - {name: prod, context: {cluster: c, user: u}}
"""


def test_namespace_defaults_to_the_contexts_like_kubectl(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert context_namespace(str(path), None) == "team-a"
    assert context_namespace(str(path), "prod") == "default"
    assert context_namespace(str(tmp_path / "absent"), None) == "default"


def test_people_commands_are_registered() -> None:
    for name in ("get", "status", "promote", "abort", "retry", "pause", "resume", "lint"):
        assert COMMANDS[name][0].startswith("flaggerpy.ctl.")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["get", "canaries", "-A", "-n", "x"]) == 2
    assert "-A/--all-namespaces and -n/--namespace cannot be used together" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["get", "deployments"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli_main(["promote"])
    assert exc.value.code == 2
    assert "the following arguments are required: name" in capsys.readouterr().err
