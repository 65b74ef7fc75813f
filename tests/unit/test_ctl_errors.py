"""Bad input to the cluster commands is refused before any request, naming the flag or argument and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaggerpy.cli import main as cli_main

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: dev
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {}}]
contexts: [{name: dev, context: {cluster: c, user: u}}, {name: prod, context: {cluster: c, user: u}}]
"""


def ctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", ["status", "promote", "abort", "retry", "pause", "resume"])
def test_a_name_kubernetes_would_refuse_is_a_usage_error(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = ctl(capsys, command, "Pod_Info", "--kubeconfig", "/nonexistent")
    assert (code, out) == (2, "")
    assert err.startswith("error: NAME 'Pod_Info': not a valid Canary name")


@pytest.mark.parametrize("argv", [["get", "canaries"], ["status", "podinfo"], ["pause", "podinfo"]])
def test_a_namespace_kubernetes_would_refuse_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                              argv: list[str]) -> None:
    code, _, err = ctl(capsys, *argv, "-n", "Team_A", "--kubeconfig", "/nonexistent")
    assert code == 2 and err.startswith("error: -n/--namespace 'Team_A': not a valid namespace name")


def test_a_kubeconfig_that_is_not_yaml_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("clusters: [\n")
    code, out, err = ctl(capsys, "get", "canaries", "--kubeconfig", str(broken))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: --kubeconfig {broken}: not valid YAML:") and "(line 2)" in err


def test_a_file_that_is_not_a_kubeconfig_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "notes"
    text.write_text("just some words\n")
    monkeypatch.setenv("KUBECONFIG", str(text))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = ctl(capsys, "promote", "podinfo")
    assert code == 1 and err == f"error: $KUBECONFIG {text}: not a kubeconfig (expected a mapping with clusters, " \
                                 "contexts and users)\n"


def test_an_unknown_context_lists_the_known_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    code, _, err = ctl(capsys, "status", "podinfo", "--kubeconfig", str(path), "--context", "staging")
    assert code == 1 and err == f"error: --context 'staging': no such context in {path} (contexts: dev, prod)\n"


def test_a_missing_kubeconfig_is_named_once(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, out, err = ctl(capsys, "get", "canaries")
    assert (code, out) == (1, "")
    assert err == f"error: kubeconfig '{tmp_path / 'absent'}' does not exist (pass --kubeconfig or run in a pod)\n"
