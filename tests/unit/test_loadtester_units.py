"""Load tester building blocks: flags, durations, payload parsing and command output capture."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from flaggerpy.loadtester import cli
from flaggerpy.loadtester.commands import run_command
from flaggerpy.loadtester.durations import parse_duration
from flaggerpy.loadtester.payload import PayloadError, parse_payload


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("2h45m", 9900.0), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1x", "10", "h", "1h 30m", "-1s"])
def test_bad_durations_name_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_flags_defaults() -> None:
    config = cli._config_from(_args())
    assert (config.port, config.timeout, config.namespace_regexp, config.log_cmd_output) == (8080, 3600.0, None, False)


def test_flags_parsed() -> None:
    config = cli._config_from(
        _args("--port", "9090", "--timeout", "10m", "--namespace-regexp", "^test", "--log-cmd-output")
    )
    assert config.port == 9090
    assert config.timeout == 600.0
    assert config.namespace_regexp is not None and config.namespace_regexp.pattern == "^test"
    assert config.log_cmd_output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "soon"], "--timeout: 'soon' is not a duration"),
        (["--timeout", "0"], "--timeout: must be > 0"),
        (["--namespace-regexp", "(unclosed"], "--namespace-regexp: '(unclosed' is not a regular expression"),
        (["--port", "70000"], "--port: must be between 1 and 65535"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_args(*argv)) == 2
    assert message in capsys.readouterr().err


def test_payload_fields() -> None:
    payload = parse_payload(
        b'{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "c1",'
        b' "metadata": {"cmd": "hey http://podinfo-canary.test:9898/"}}'
    )
    assert payload.canary == "podinfo.test"
    assert payload.phase == "Progressing"
    assert payload.metadata == {"cmd": "hey http://podinfo-canary.test:9898/"}


def test_payload_rejects_non_object_metadata() -> None:
    with pytest.raises(PayloadError, match="metadata: must be an object"):
        parse_payload(b'{"name": "p", "namespace": "t", "metadata": ["cmd"]}')


async def test_output_keeps_the_tail_within_the_limit() -> None:
    result = await run_command(["sh", "-c", "seq 1 5000"], time_limit=10, max_output=100, kill_grace=0.5)
    assert result.ok
    assert result.truncated
    assert len(result.output) <= 100
    assert result.output.endswith("4999\n5000\n")


async def test_cancelled_command_is_killed() -> None:
    task = asyncio.create_task(run_command(["sleep", "30"], time_limit=60, max_output=100, kill_grace=0.5))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
