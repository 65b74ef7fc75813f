"""``flaggerpy demo --gateway traefik`` without Traefik says how to get it, before starting anything."""

from __future__ import annotations

import argparse

import pytest

from flaggerpy.demo import cli


def test_missing_traefik_is_named_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    assert cli.run(parser.parse_args(["--gateway", "traefik"])) == 2
    err = capsys.readouterr().err
    assert "--gateway traefik: no 'traefik' executable on PATH" in err
    assert "pip install 'flaggerpy[traefik]'" in err
