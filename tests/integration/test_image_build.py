"""The container image, checked without a Docker engine (none can run here): the Dockerfile's build stage packages
the whole controller from exactly what it copies, and the image agrees with the Deployment that runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DEPLOYMENT = REPO / "deploy" / "controller" / "deployment.yaml"


def instructions(stage: int) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one stage of the Dockerfile, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages[stage]


def tracked_modules() -> set[str]:
    """Every file of the package git tracks, as a path inside a wheel."""
    out = subprocess.run(["git", "ls-files", "flaggerpy"], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def build_wheel(source: Path, out: Path) -> Path:
    """Build a wheel of ``source`` as the build stage's ``pip install .`` does (isolated, with the declared backend)."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--quiet", "--wheel-dir", str(out),
         str(source)],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return next(out.glob("flaggerpy-*.whl"))


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout to know what the package holds")
def test_the_build_stage_packages_every_module_from_what_it_copies(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for keyword, args in instructions(0):
        if keyword != "COPY":
            continue
        *sources, destination = args.split()
        for name in sources:
            # Docker's rule: into a directory (trailing slash) each source keeps its name, else it is renamed.
            target = source / destination / Path(name).name if destination.endswith("/") else source / destination
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, target)
            else:
                shutil.copy(REPO / name, target)
    wheel = build_wheel(source, tmp_path / "wheel")

    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
        entry_points = next(n for n in packaged if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    missing = tracked_modules() - packaged
    assert not missing, f"the image would lack {sorted(missing)}"
    # The image's ENTRYPOINT is the console script the wheel installs.
    entrypoint = next(args for keyword, args in instructions(1) if keyword == "ENTRYPOINT")
    assert yaml.safe_load(entrypoint) == ["flaggerpy"]
    assert "flaggerpy = flaggerpy.cli:main" in scripts


def test_the_image_runs_as_the_user_and_port_the_deployment_expects() -> None:
    runtime = dict(instructions(1))
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    uid, _, gid = runtime["USER"].partition(":")
    assert (int(uid), int(gid)) == (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"])
    assert pod["securityContext"]["runAsNonRoot"] and int(uid) != 0
    port = int(runtime["EXPOSE"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert f"--port={port}" in container["args"]
    # The Deployment's args replace the image's CMD, so they must start with the subcommand the CMD names.
    assert container["args"][0] == yaml.safe_load(runtime["CMD"])[0]
