"""``flaggerpy lint``: offline validation of Flagger manifests, with findings that name file, line and field."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flaggerpy.cli import main as cli_main
from flaggerpy.ctl.lint import lint_sources, main

REPO = Path(__file__).resolve().parents[2]
FLAGGER_FIXTURES = sorted((REPO / "tests" / "fixtures" / "flagger").glob("*.yaml"))
EXAMPLES = sorted((REPO / "deploy" / "examples").glob("*.yaml"))

CANARY = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898, gatewayRefs: [{name: gw}]}
  analysis:
    interval: 1m
    threshold: 2
    maxWeight: 50
    stepWeight: STEP
    metrics:
      - name: errors
        templateRef: {name: error-rate}
        thresholdRange: {max: 1}
        templateVariables: {app: podinfo}
    alerts:
      - name: team
        providerRef: {name: team-slack, namespace: flagger}
"""
TEMPLATE = """\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: test}
spec:
  provider: {type: prometheus, address: "http://prometheus:9090"}
  query: 'sum(rate(x{namespace="{{ namespace }}", app="{{ variables.VAR }}"}[{{ interval }}]))'
"""
PROVIDER = """\
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: team-slack, namespace: flagger}
spec: {type: slack, channel: team, address: "https://hooks.slack.com/services/x"}
"""


def lines(*sources: tuple[str, str]) -> list[str]:
    return [str(f) for f in lint_sources(list(sources))]


def test_flaggers_own_examples_have_no_errors() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(p) for p in FLAGGER_FIXTURES], False, out, err, io.StringIO())
    assert code == 0, out.getvalue()
    assert "0 error(s)" in err.getvalue()


def test_shipped_examples_are_clean() -> None:
    # Linted together, as a user applies them: the A/B and blue/green examples use the first file's templates.
    assert len(EXAMPLES) >= 3
    assert lines(*[(str(p), p.read_text()) for p in EXAMPLES]) == []


def test_good_files_with_references_across_files_pass() -> None:
    canary = CANARY.replace("STEP", "10")
    template = TEMPLATE.replace("VAR", "app")
    assert lines(("canary.yaml", canary), ("template.yaml", template), ("provider.yaml", PROVIDER)) == []


def test_schema_errors_name_file_line_and_field() -> None:
    stream = "---\n" + TEMPLATE.replace("VAR", "app") + "---\n" + CANARY.replace("STEP", "-5")
    # The rest of an invalid Canary is still checked: its references are reported in the same run.
    assert lines(("bad.yaml", stream)) == [
        "bad.yaml:21: spec.analysis.stepWeight: must be > 0",
        "bad.yaml:29: spec.analysis.alerts[0].providerRef: warning: AlertProvider flagger/team-slack is not in the "
        "given files (it must exist in the cluster)",
    ]


def test_missing_references_are_warnings_and_exit_zero() -> None:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(CANARY.replace("STEP", "10"))
    assert main(["-"], False, out, err, stdin) == 0
    found = out.getvalue().splitlines()
    assert found == [
        "<stdin>:16: spec.analysis.metrics[0].templateRef: warning: MetricTemplate "
        "test/error-rate is not in the given files (it must exist in the cluster)",
        "<stdin>:21: spec.analysis.alerts[0].providerRef: warning: AlertProvider "
        "flagger/team-slack is not in the given files (it must exist in the cluster)",
    ]
    assert main(["-"], True, io.StringIO(), io.StringIO(), io.StringIO(CANARY.replace("STEP", "10"))) == 1


def test_a_query_that_does_not_render_for_the_canary_is_an_error() -> None:
    found = lines(("c.yaml", CANARY.replace("STEP", "10")), ("t.yaml", TEMPLATE.replace("VAR", "missing")),
                  ("p.yaml", PROVIDER))
    assert len(found) == 1
    assert found[0].startswith("c.yaml:16: spec.analysis.metrics[0].templateRef: query of "
                               "MetricTemplate/error-rate (t.yaml:1) does not render for this canary:")
    assert "variables.missing" in found[0] and "defined: app" in found[0]


def test_yaml_syntax_errors_and_non_objects_are_reported_and_other_kinds_skipped() -> None:
    stream = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\n- a list\n---\nkey: [unclosed\n"
    assert lines(("x.yaml", stream)) == [
        "x.yaml:5: must be a Kubernetes object (a mapping)",
        "x.yaml:8: YAML syntax error: did not find expected ',' or ']' (column 1)",
    ]


def test_unserved_api_version_and_missing_name() -> None:
    stream = ("apiVersion: flagger.app/v1alpha3\nkind: Canary\nmetadata: {name: old}\n---\n"
              + PROVIDER.replace("name: team-slack, ", ""))
    assert lines(("x.yaml", stream)) == [
        "x.yaml:1: apiVersion: flagger.app/v1alpha3 is not served: use flagger.app/v1beta1",
        "x.yaml:7: metadata.name: required",
    ]


def test_duplicates_are_warned() -> None:
    found = lines(("a.yaml", PROVIDER), ("b.yaml", PROVIDER))
    assert found == ["b.yaml:3: metadata.name: warning: duplicate AlertProvider/team-slack of a.yaml:1; "
                     "the later one wins when applied"]


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(PROVIDER)
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROVIDER.replace("type: slack", "type: pager"))
    assert cli_main(["lint", str(good)]) == 0
    assert cli_main(["lint", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:4: spec.type: " in out
    assert cli_main(["lint", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: cannot read: No such file or directory" in capsys.readouterr().out


def test_metric_provider_types_are_checked() -> None:
    found = lines(("t.yaml", TEMPLATE.replace("type: prometheus", "type: prometheus2")),
                  ("k.yaml", TEMPLATE.replace("type: prometheus", "type: keptn").replace("error-rate", "keptn")))
    assert found[0].startswith("t.yaml:5: spec.provider.type: 'prometheus2' is unknown (one of: cloudwatch, datadog,")
    assert found[1] == "k.yaml:5: spec.provider.type: 'keptn' is not supported by flaggerpy"


def test_a_canary_for_another_mesh_is_named() -> None:
    stream = CANARY.replace("STEP", "10").replace("spec:\n", "spec:\n  provider: istio\n", 1)
    found = lines(("c.yaml", stream), ("t.yaml", TEMPLATE.replace("VAR", "app")), ("p.yaml", PROVIDER))
    assert len(found) == 1 and found[0].startswith("c.yaml:7: spec.provider: ")
    assert "istio" in found[0]


TYPOS = """\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898, gatewayRefs: [{name: gw}], hostz: [app.example.com]}
  analysis:
    interval: 1m
    threshold: 2
    maxweight: 50
    stepWeight: 10
    stepWeigth: 5
    metrics:
      - name: request-success-rate
        tresholdRange: {min: 99}
        interval: 1m
"""


def test_fields_the_api_server_would_drop_are_named_with_a_suggestion(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "canary.yaml"
    path.write_text(TYPOS)
    assert cli_main(["lint", str(path)]) == 0  # the API server accepts them (and drops them): warnings
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:6: spec.service.hostz: warning: unknown field: the API server drops it; did you mean 'hosts'?",
        f"{path}:10: spec.analysis.maxweight: warning: unknown field: the API server drops it; did you mean "
        "'maxWeight'?",
        f"{path}:12: spec.analysis.stepWeigth: warning: unknown field: the API server drops it; did you mean "
        "'stepWeight'?",
        # Without its (misspelt) thresholdRange the check can only fail on a query error: said too.
        f"{path}:14: spec.analysis.metrics[0].thresholdRange: warning: not set: the check fails only when the "
        "query fails",
        f"{path}:15: spec.analysis.metrics[0].tresholdRange: warning: unknown field: the API server drops it; did "
        "you mean 'thresholdRange'?",
    ]
    assert cli_main(["lint", "--strict", str(path)]) == 1


def test_urls_are_checked() -> None:
    canary = CANARY.replace("STEP", "10").replace("    alerts:\n", (
        "    webhooks:\n"
        "      - {name: load, url: not a url}\n"
        "      - {name: gate, url: 'http://flagger-loadtester.test/gate/check'}\n"
        "      - {name: port, url: 'http://loadtester:80a/'}\n"
        "    alerts:\n"))
    template = TEMPLATE.replace("VAR", "app").replace("http://prometheus:9090", "prometheus:9090")
    provider = PROVIDER.replace("https://hooks.slack.com/services/x", "hooks.slack.com/services/x")
    found = lines(("c.yaml", canary), ("t.yaml", template), ("p.yaml", provider))
    assert found == [
        "c.yaml:20: spec.analysis.webhooks[0].url: 'not a url' is not an http(s) URL with a host (e.g. "
        "http://flagger-loadtester.test/)",
        "c.yaml:22: spec.analysis.webhooks[2].url: 'http://loadtester:80a/' is not a URL: Port could not be cast "
        "to integer value as '80a'",
        "t.yaml:5: spec.provider.address: 'prometheus:9090' is not an http(s) URL with a host (e.g. "
        "http://flagger-loadtester.test/)",
        "p.yaml:4: spec.address: 'hooks.slack.com/services/x' is not an http(s) URL with a host (e.g. "
        "http://flagger-loadtester.test/)",
    ]


def test_urls_the_controller_would_refuse_are_errors_without_echoing_credentials() -> None:
    canary = CANARY.replace("STEP", "10").replace("    alerts:\n", (
        "    webhooks:\n"
        "      - {name: load, url: 'http://user:s3cret@loadtester.test/'}\n"
        "      - {name: gate, url: 'http://loadtester.test/gate#check'}\n"
        "    alerts:\n"))
    provider = PROVIDER.replace("type: slack,", "type: slack, proxy: 'http://user:pw@proxy.test:3128',")
    found = lines(("c.yaml", canary), ("t.yaml", TEMPLATE.replace("VAR", "app")), ("p.yaml", provider))
    assert found == [
        "c.yaml:20: spec.analysis.webhooks[0].url: must not contain user info (user:password@); use the Secret's "
        "credentials",
        "c.yaml:21: spec.analysis.webhooks[1].url: must not contain a fragment ('#')",
    ]
    assert not any("s3cret" in line for line in found)


def test_every_problem_of_every_document_is_reported_in_one_run(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    canary = (CANARY.replace("STEP", "-5")
              .replace("    alerts:\n", "      - name: custom\n        thresholdRange: {max: 1}\n    alerts:\n")
              .replace("interval: 1m\n", "interval: 1m\n    stepWeigth: 5\n", 1))
    template = TEMPLATE.replace("VAR", "missing")
    broken = PROVIDER.replace("type: slack", "type: pager").replace("https://hooks.slack.com/services/x", "x")
    first, second = tmp_path / "canary.yaml", tmp_path / "more.yaml"
    first.write_text(canary)
    second.write_text(template + "---\n" + broken)
    assert cli_main(["lint", str(first), str(second)]) == 1
    captured = capsys.readouterr()
    out = captured.out
    for expected in (
        f"{first}:11: spec.analysis.stepWeigth: warning: unknown field",
        f"{first}:14: spec.analysis.stepWeight: must be > 0",
        f"{first}:17: spec.analysis.metrics[0].templateRef: query of MetricTemplate/error-rate ({second}:1) does "
        "not render for this canary: {{ variables.missing }} is not defined",
        f"{first}:20: spec.analysis.metrics[1]: needs templateRef or a builtin name",
        f"{second}:11: spec.type: ",
        f"{second}:11: spec.address: 'x' is not an http(s) URL",
    ):
        assert expected in out, (expected, out)
    assert "2 file(s) checked" in captured.err and "5 error(s)" in captured.err
