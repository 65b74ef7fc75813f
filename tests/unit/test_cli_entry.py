"""``flaggerpy --version`` and ``flaggerpy --help`` as a person types them, and the one version everything shows."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

import flaggerpy
from tests.paths import REPO_ROOT


def flaggerpy_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flaggerpy.cli", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})


def test_version_prints_the_package_version() -> None:
    for flag in ("--version", "-version"):  # -version: Flagger's spelling
        done = flaggerpy_cli(flag)
        assert (done.returncode, done.stdout, done.stderr) == (0, f"flaggerpy {flaggerpy.__version__}\n", "")


def test_help_lists_the_commands_and_points_to_command_help() -> None:
    done = flaggerpy_cli("--help")
    assert done.returncode == 0
    assert "  get " in done.stdout and "  lint " in done.stdout
    assert done.stdout.rstrip().endswith("Run 'flaggerpy COMMAND --help' for the options of a command.")
    assert "flaggerpy --version" in done.stdout


def test_the_image_tag_in_deploy_is_the_package_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == flaggerpy.__version__
    kustomization = yaml.safe_load((REPO_ROOT / "deploy" / "kustomization.yaml").read_text())
    assert [i["newTag"] for i in kustomization["images"] if i["name"] == "flaggerpy"] == [flaggerpy.__version__]
    for path in [*(REPO_ROOT / "deploy").rglob("*.yaml"), REPO_ROOT / "README.md"]:
        for tag in re.findall(r"ghcr\.io/flaggerpy/flaggerpy:([\w.-]+)", path.read_text()):
            assert tag == flaggerpy.__version__, path
