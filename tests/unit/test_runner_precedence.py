"""Which of a flag and its environment variables wins, said the same way by the code, ``run --help`` and the README.

Flagger's rule (cmd/flagger/main.go, ``fromEnv``): its own variable, when non-empty, wins over the flag. Ours for
``FLAGGERPY_*``: the command line wins over the variable.
"""

from __future__ import annotations

import argparse
import re

from flaggerpy.alerts import notifier
from flaggerpy.canary import runner
from flaggerpy.canary.runflags import resolve
from tests.paths import REPO_ROOT


def flagger_variables() -> set[str]:
    """Every Flagger variable the controller honours over its flag."""
    flags = {flag.flagger_env for flag in runner.FLAGS if flag.flagger_env}
    return flags | set(notifier._ENVIRONMENT.values())


def run_section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    return " ".join(text.split("## Run the controller", 1)[1].split("\n## ", 1)[0].split())


def help_text() -> str:
    parser = argparse.ArgumentParser(prog="flaggerpy run")
    runner.configure(parser)
    return " ".join(parser.format_help().split())


def test_readme_names_every_flagger_variable_and_says_it_wins() -> None:
    section = run_section()
    named = set(re.findall(r"`([A-Z][A-Z_]+)`", section.split("Flagger's own variables", 1)[1].split("spellings")[0]))
    assert named == flagger_variables()
    assert "the command line wins over these `FLAGGERPY_*` variables" in section
    assert "a non-empty one wins over its flag" in section


def test_help_says_the_same() -> None:
    text = help_text()
    for variable in flagger_variables():
        mention = text.index(f"${variable}")
        assert "wins" in text[mention - 60:mention + 60], variable
    assert "$FLAGGERPY_SOME_FLAG (the command line wins)" in text


def test_the_code_does_what_both_say() -> None:
    parser = argparse.ArgumentParser(prog="flaggerpy run")
    runner.configure(parser)
    for flag in (f for f in runner.FLAGS if f.flagger_env):
        argv = [f"--{flag.name}", "http://from-flag/"]
        args, _ = resolve(parser.parse_args(argv), runner.FLAGS, {flag.flagger_env: "http://from-flagger-env/",
                                                                  flag.env: "http://from-flaggerpy-env/"})
        assert getattr(args, flag.dest) == "http://from-flagger-env/", flag.name
        args, _ = resolve(parser.parse_args(argv), runner.FLAGS, {flag.env: "http://from-flaggerpy-env/"})
        assert getattr(args, flag.dest) == "http://from-flag/", flag.name
    flags = {"slack_url": "https://hooks.slack.com/services/flag", "msteams_url": "", "slack_token": "flag-token",
             "slack_proxy_url": "", "msteams_proxy_url": ""}
    defaults = notifier.DefaultAlerts(**flags)
    environ = {variable: f"https://env.example/{variable}" for variable in notifier._ENVIRONMENT.values()}
    resolved = defaults.with_environment(environ)
    for attribute, variable in notifier._ENVIRONMENT.items():
        assert getattr(resolved, attribute) == environ[variable], variable
