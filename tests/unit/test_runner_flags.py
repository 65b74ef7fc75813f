"""``flaggerpy run``'s flags: environment variables, Flagger's spellings, and what each new flag configures."""

from __future__ import annotations

import argparse

import pytest
import structlog

from flaggerpy.analysis.builtin import Flavour
from flaggerpy.canary import runner
from flaggerpy.canary.runflags import resolve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flaggerpy run")
    runner.configure(parser)
    return parser


def _args(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    args, problems = resolve(_parser().parse_args(argv), runner.FLAGS, environ or {})
    assert problems == []
    return args


def test_defaults_without_flags_or_environment() -> None:
    args = _args([])
    assert (args.threadiness, args.port, args.enable_config_tracking, args.enable_leader_election) == (2, 8080, True,
                                                                                                         False)
    assert args.selector_labels == "app,name,app.kubernetes.io/name"
    assert args.kubeconfig is None


def test_environment_sets_a_flag_and_the_command_line_wins() -> None:
    environ = {"FLAGGERPY_THREADINESS": "5", "FLAGGERPY_METRICS_SERVER": "http://prom:9090"}
    assert _args([], environ).threadiness == 5
    assert _args(["--threadiness", "3"], environ).threadiness == 3
    assert _args(["--threadiness", "3"], environ).metrics_server == "http://prom:9090"


@pytest.mark.parametrize(("argv", "expected"), [
    (["--enable-config-tracking=false"], False),
    (["-enable-config-tracking=false"], False),
    (["--no-enable-config-tracking"], False),
    (["--enable-config-tracking=TRUE"], True),
    (["--enable-config-tracking"], True),
    (["-enable-config-tracking=0"], False),
])
def test_go_style_booleans(argv: list[str], expected: bool) -> None:
    assert _args(argv).enable_config_tracking is expected


def test_boolean_from_environment_and_leader_election_switch() -> None:
    args = _args(["-enable-leader-election"], {"FLAGGERPY_ENABLE_CONFIG_TRACKING": "false"})
    assert args.enable_config_tracking is False
    assert args.enable_leader_election is True


def test_flaggers_single_dash_spelling() -> None:
    args = _args(["-log-level=debug", "-threadiness", "4", "-metrics-server=http://prometheus:9090"])
    assert (args.log_level, args.threadiness, args.metrics_server) == ("debug", 4, "http://prometheus:9090")


def test_flaggers_own_variables_win_over_the_flag() -> None:
    environ = {"EVENT_WEBHOOK_URL": "http://hooks/events", "SLACK_CHANNEL": "#ops", "FLAGGERPY_SLACK_USER": "bot"}
    args = _args(["--event-webhook", "http://other", "--slack-channel", "#dev"], environ)
    assert (args.event_webhook, args.slack_channel, args.slack_user) == ("http://hooks/events", "#ops", "bot")


def test_flaggers_webhook_variables_reach_the_default_alerts() -> None:
    args = _args(["--slack-url", "https://hooks.slack.com/services/flag", "--slack-channel", "#dev"])
    alerts = runner.wiring_from(args, {"SLACK_URL": "https://hooks.slack.com/services/env"}).alerts
    assert (alerts.slack_url, alerts.slack_channel) == ("https://hooks.slack.com/services/env", "#dev")


def test_new_flags_reach_the_engine_and_metric_settings() -> None:
    args = _args(["--selector-labels", "app.kubernetes.io/name, app", "--include-label-prefix", "team,app.",
                  "--metrics-flavour", "envoy", "--metrics-query-timeout", "2.5"])
    wiring = runner.wiring_from(args, {})
    engine = wiring.controller.engine
    assert engine.selector_labels == ("app.kubernetes.io/name", "app")
    assert engine.include_label_prefixes == ("team", "app.")
    assert (wiring.metrics.builtin_flavour, wiring.metrics.query_timeout) == (Flavour.ENVOY, 2.5)
    # Flagger's default: no label of the target is copied to the primary but its identity label.
    assert runner.wiring_from(_args([]), {}).controller.engine.include_label_prefixes == ()


@pytest.mark.parametrize(("argv", "problem"), [
    (["--threadiness", "0"], "argument --threadiness: must be >= 1, not 0"),
    (["--port=70000"], "argument --port: must be between 1 and 65535, not 70000"),
    (["-enable-config-tracking=maybe"], "'maybe' is not a boolean (true or false)"),
    (["--metrics-flavour", "linkerd"], "argument --metrics-flavour:"),
    (["--metrics-query-timeout", "0"], "argument --metrics-query-timeout: must be > 0, not 0"),
    (["--selector-labels", " , "], "argument --selector-labels: needs at least one label"),
    (["-log-level=loud"], "unknown level 'loud' (debug, info, warning, error)"),
])
def test_bad_command_line_values_name_the_flag(argv: list[str], problem: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert problem in capsys.readouterr().err


def test_bad_environment_values_name_the_variable() -> None:
    environ = {"FLAGGERPY_PORT": "http", "FLAGGERPY_MESH_PROVIDER": "istio", "FLAGGERPY_THREADINESS": "7"}
    args, problems = resolve(_parser().parse_args([]), runner.FLAGS, environ)
    assert problems == [
        "$FLAGGERPY_MESH_PROVIDER: 'istio' is not one of gatewayapi, gatewayapi:v1, gatewayapi:v1beta1",
        "$FLAGGERPY_PORT: 'http' is not an integer",
    ]
    assert args.threadiness == 7


def test_help_names_each_flags_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag in runner.FLAGS:
        assert f"${flag.env}" in out
    assert "$SLACK_URL" in out and "$EVENT_WEBHOOK_URL" in out
    assert "--no-enable-config-tracking" in out


# Every flag of Flagger's cmd/flagger/main.go, with a value as Flagger's manifests write it (one dash).
FLAGGER_FLAGS = [
    "-kubeconfig=/tmp/kubeconfig", "-kubeconfig-qps=50", "-kubeconfig-burst=100", "-master=https://10.0.0.1",
    "-metrics-server=http://prometheus:9090", "-control-loop-interval=15s", "-log-level=info", "-port=8080",
    "-slack-url=https://hooks.slack.com/x", "-slack-token=xoxb", "-slack-proxy-url=http://proxy:3128",
    "-slack-user=flagger", "-slack-channel=general", "-event-webhook=http://events", "-msteams-url=https://teams/x",
    "-msteams-proxy-url=http://proxy:3128", "-include-label-prefix=app.kubernetes.io", "-threadiness=4",
    "-zap-replace-globals=true", "-zap-encoding=console", "-namespace=test", "-mesh-provider=gatewayapi:v1",
    "-selector-labels=app,name", "-ingress-annotations-prefix=custom.ingress.kubernetes.io",
    "-ingress-class=contour", "-enable-leader-election=false", "-leader-election-namespace=flagger",
    "-enable-config-tracking=true", "-version=false", "-kubeconfig-service-mesh=/tmp/mesh",
    "-cluster-name=prod", "-no-cross-namespace-refs=true",
]


def test_every_flagger_flag_is_accepted() -> None:
    args = _args(FLAGGER_FLAGS)
    assert args.control_loop_interval == 15.0
    assert args.zap_encoding == "console"
    wiring = runner.wiring_from(args, {})
    assert wiring.no_cross_namespace_refs is True
    assert wiring.controller.control_loop_interval == 15.0
    assert wiring.alerts.slack_token == "xoxb"
    assert runner.IGNORED_FLAGS == ("master", "kubeconfig-service-mesh", "ingress-annotations-prefix",
                                    "ingress-class", "zap-replace-globals")


def test_version_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.run(_parser().parse_args(["-version"])) == 0
    assert capsys.readouterr().out.startswith("flaggerpy version ")


def test_ignored_flags_are_logged_once_each() -> None:
    given = _parser().parse_args(["-master=https://10.0.0.1", "-ingress-class=contour"])
    with structlog.testing.capture_logs() as logs:
        runner._log_ignored(given)
    assert [entry["flag"] for entry in logs if entry["event"] == "flag ignored"] == ["-master", "-ingress-class"]


@pytest.mark.parametrize("value", ["10", "0s", "-1s", "soon"])
def test_control_loop_interval_takes_a_go_duration(value: str) -> None:
    if value == "10":
        assert _args([f"-control-loop-interval={value}"]).control_loop_interval == 10.0
        return
    with pytest.raises(SystemExit):
        _parser().parse_args([f"-control-loop-interval={value}"])


def test_one_settings_root_carries_every_flag_and_variable() -> None:
    args = _args(["--port", "9090", "--enable-leader-election", "--leader-election-namespace", "ops",
                  "--log-level", "debug"], {"FLAGGERPY_THREADINESS": "6", "FLAGGERPY_ZAP_ENCODING": "console"})
    settings = runner.settings_of(args, {})
    assert (settings.telemetry.port, settings.leader_election.enabled, settings.leader_election.namespace) == (
        9090, True, "ops")
    assert (settings.log.level, settings.log.json) == ("debug", False)
    assert settings.wiring.controller.threadiness == 6
    assert runner.settings_of(_args([]), {}, encoding_given=False).log.json is None
