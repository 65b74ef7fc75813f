"""``flaggerpy demo`` refuses bad flags before starting anything: exit code 2 and the flag named."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaggerpy.cli import main as cli_main
from flaggerpy.demo import manifests


def demo(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main(["demo", *flags])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("flags", "problem"), [
    (["--metrics-port", "70000"], "--metrics-port: must be between 0 (a free port) and 65535, not 70000"),
    (["--metrics-port", "-1"], "--metrics-port: must be between 0 (a free port) and 65535, not -1"),
    (["--timeout", "nan"], "--timeout: must be > 0, not nan"),
    (["--rps", "nan"], "--rps: must be > 0 and <= 5000, not nan"),
    (["--gateway-crds", "/nonexistent/crds"], "--gateway-crds: /nonexistent/crds is not a directory"),
])
def test_bad_values_are_named(capsys: pytest.CaptureFixture[str], flags: list[str], problem: str) -> None:
    code, err = demo(capsys, *flags)
    assert code == 2 and f"flaggerpy demo: {problem}\n" in err


def test_a_crd_directory_with_broken_yaml_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "standard.yaml").write_text("kind: CustomResourceDefinition\nspec: [\n")
    code, err = demo(capsys, "--gateway-crds", str(tmp_path))
    assert code == 2
    assert err.startswith(f"flaggerpy demo: --gateway-crds: {tmp_path / 'standard.yaml'} cannot be read as YAML:")


def test_broken_crds_from_the_environment_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "standard.yaml").write_bytes(b"\xff\xfe not text")
    monkeypatch.setenv(manifests.GATEWAY_CRDS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=rf"^\${manifests.GATEWAY_CRDS_ENV}: .*standard.yaml cannot be read as YAML"):
        manifests.gateway_crds()
