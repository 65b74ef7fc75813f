"""The container image, checked without a Docker engine (none can run here): the Dockerfile's build stage packages
the whole controller from exactly what it copies, and the image agrees with the Deployment that runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DEPLOYMENT = REPO / "deploy" / "controller" / "deployment.yaml"
# What the controller image leaves out (the Dockerfile removes them before building the wheel).
NOT_SHIPPED = ("dashboard", "demo", "loadtester", "sandbox")


def instructions(stage: int) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one stage of the Dockerfile, continuation lines joined, comments dropped; stage
    -1 is what comes before the first FROM (global ARGs)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages[stage + 1]


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
def test_the_build_stage_packages_the_controller_and_nothing_else(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    removed: list[str] = []
    for keyword, args in instructions(0):
        if keyword == "RUN" and "rm -rf" in args:
            removed += [word for word in args.split("&&")[0].split()[2:]]
        if keyword != "COPY":
            continue
        *sources, destination = args.split()
        for name in sources:
            # Docker's rule: into a directory (trailing slash) each source keeps its name, else it is renamed.
            target = source / destination / Path(name).name if destination.endswith("/") else source / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, target)
            else:
                shutil.copy(REPO / name, target)
    assert sorted(removed) == [f"flaggerpy/{name}" for name in sorted(NOT_SHIPPED)]
    for path in removed:
        shutil.rmtree(source / path)
    wheel = build_wheel(source, tmp_path / "wheel")

    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
        entry_points = next(n for n in packaged if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        archive.extractall(tmp_path / "installed")
    shipped = {m for m in tracked_modules() if m.split("/")[1] not in NOT_SHIPPED}
    missing = shipped - packaged
    assert not missing, f"the image would lack {sorted(missing)}"
    assert not [m for m in packaged if m.split("/")[0] == "flaggerpy" and m.split("/")[1] in NOT_SHIPPED]
    # The image's ENTRYPOINT is the console script the wheel installs.
    entrypoint = next(args for keyword, args in instructions(1) if keyword == "ENTRYPOINT")
    assert yaml.safe_load(entrypoint) == ["flaggerpy"]
    assert "flaggerpy = flaggerpy.cli:main" in scripts
    # The controller starts from the wheel alone (its help parses every flag).
    ran = subprocess.run([sys.executable, "-m", "flaggerpy.cli", "run", "--help"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "installed"), "PATH": "/usr/bin:/bin"}, timeout=60,
                         cwd=tmp_path, check=False)
    assert ran.returncode == 0 and "--no-cross-namespace-refs" in ran.stdout, ran.stderr[-2000:]


def test_every_package_the_image_installs_is_locked_with_hashes() -> None:
    lock = (REPO / "requirements" / "image.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", lock, re.MULTILINE))
    body = "\n".join(line for line in lock.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    entries = re.split(r"\n(?=[a-z0-9])", body)
    assert len(entries) == len(pinned)
    assert all("--hash=sha256:" in entry for entry in entries), "an unhashed requirement"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in declared["dependencies"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements/image.lock"
    for requirement in declared["optional-dependencies"]["sandbox"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        assert name not in pinned, f"the sandbox's {name} must not be in the image"
    build = (REPO / "requirements" / "build.lock").read_text()
    assert re.search(r"^setuptools==\S+ \\\n\s+--hash=sha256:", build, re.MULTILINE)
    # Both stages use the pinned base image.
    (base,) = [args for keyword, args in instructions(-1) if keyword == "ARG"]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}", base)
    assert [args for keyword, args in instructions(0)[:1]] == ["${PYTHON_IMAGE} AS build"]
    assert [args for keyword, args in instructions(1)[:1]] == ["${PYTHON_IMAGE}"]


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
