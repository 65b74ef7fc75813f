"""MetricTemplate query rendering: Flagger's published templates render unchanged, errors name the variable."""

from __future__ import annotations

import pytest

from flaggerpy.analysis.templates import Budget, BudgetExceeded, TemplateError, TemplateModel, render
from tests.unit.test_analysis_fixtures import canary

# The two MetricTemplate queries of Flagger's Gateway API announcement (fluxcd.io blog, 2022-03-11), verbatim.
FLAGGER_ERROR_RATE = """100 - sum(
    rate(
        istio_requests_total{
            reporter="source",
            destination_workload_namespace="{{ namespace }}",
            destination_workload=~"{{ target }}",
            response_code!~"5.*"
        }[{{ interval }}]
    )
)
/
sum(
    rate(
        istio_requests_total{
            reporter="source",
            destination_workload_namespace="{{ namespace }}",
            destination_workload=~"{{ target }}"
        }[{{ interval }}]
    )
) * 100
"""

FLAGGER_ENVOY_LATENCY = """histogram_quantile(0.99,
  sum(
    rate(
      envoy_cluster_upstream_rq_time_bucket{
        envoy_cluster_name=~"{{ namespace }}_{{ target }}-canary_[0-9a-zA-Z-]+",
      }[{{ interval }}]
    )
  ) by (le)
) / 1000
"""

# Flagger's Linkerd tutorial template, which uses templateVariables.
FLAGGER_LINKERD_LATENCY = """histogram_quantile(
  0.99,
  sum(
    rate(
      response_latency_ms_bucket{
        namespace="{{ namespace }}",
        deployment=~"{{ target }}",
        direction="{{ variables.direction }}"
      }[{{ interval }}]
    )
  ) by (le)
)
"""

MODEL = TemplateModel(
    name="podinfo",
    namespace="test",
    target="podinfo",
    service="podinfo-svc",
    ingress="podinfo-ingress",
    route="podinfo-route",
    interval="1m",
    variables={"direction": "inbound"},
)


def test_flagger_error_rate_template_renders_unchanged() -> None:
    rendered = render(FLAGGER_ERROR_RATE, MODEL)
    assert rendered == (
        FLAGGER_ERROR_RATE.replace("{{ namespace }}", "test")
        .replace("{{ target }}", "podinfo")
        .replace("{{ interval }}", "1m")
    )
    assert 'destination_workload_namespace="test"' in rendered
    assert "}[1m]" in rendered
    assert rendered.endswith(") * 100\n")


def test_flagger_envoy_latency_template_renders_unchanged() -> None:
    rendered = render(FLAGGER_ENVOY_LATENCY, MODEL)
    assert 'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+",' in rendered
    assert rendered == FLAGGER_ENVOY_LATENCY.replace("{{ namespace }}_{{ target }}", "test_podinfo").replace(
        "{{ interval }}", "1m"
    )


def test_template_variables_render() -> None:
    assert 'direction="inbound"' in render(FLAGGER_LINKERD_LATENCY, MODEL)


def test_template_variables_may_have_any_name_and_dashes() -> None:
    model = TemplateModel("n", "ns", "t", "s", "i", "r", "1m", {"items": "a", "keys": "b", "my-key": "c"})
    assert render('{{ variables.items }} {{ variables.keys }} {{ variables["my-key"] }}', model) == "a b c"
    assert render('x="{{- index variables "my-key" -}}"', model) == 'x="c"'  # Go's way to write it


def test_every_flagger_variable_is_available() -> None:
    query = "{{ name }} {{ namespace }} {{ target }} {{ service }} {{ ingress }} {{ route }} {{ interval }}"
    assert render(query, MODEL) == "podinfo test podinfo podinfo-svc podinfo-ingress podinfo-route 1m"


def test_go_template_trim_markers_and_comments() -> None:
    query = 'up{ns="{{- namespace -}}"} {{/* a Go comment */}}and {{- /* trimmed */ -}} on'
    assert render(query, MODEL) == 'up{ns="test"} andon'


def test_jinja_block_and_comment_syntax_is_plain_text_like_in_go() -> None:
    query = "label_replace(x, 'a', '{%s}', 'b', '{#}') {{ target }}"
    assert render(query, MODEL) == "label_replace(x, 'a', '{%s}', 'b', '{#}') podinfo"


def test_a_missing_variable_names_it() -> None:
    with pytest.raises(TemplateError, match=r"\{\{ deployment \}\} is not a template variable .known: name, "):
        render('up{deployment="{{ deployment }}"}', MODEL)


def test_a_missing_template_variable_lists_the_defined_ones() -> None:
    with pytest.raises(TemplateError, match=r"variables\.region \}\} is not defined.*\(defined: direction\)"):
        render('x{region="{{ variables.region }}"}', MODEL)


def test_go_dot_syntax_is_refused_with_a_hint() -> None:
    with pytest.raises(TemplateError, match=r"write \{\{ namespace \}\}"):
        render('x{ns="{{ .namespace }}"}', MODEL)


def test_syntax_errors_say_where() -> None:
    with pytest.raises(TemplateError, match="syntax error on line 2"):
        render("x\n{{ name ", MODEL)


def test_the_sandbox_blocks_python_internals() -> None:
    with pytest.raises(TemplateError):
        render("{{ name.__class__.__mro__ }}", MODEL)


def test_model_from_a_canary_uses_flagger_fallbacks() -> None:
    subject = canary(
        [
            {
                "name": "latency",
                "templateRef": {"name": "latency"},
                "thresholdRange": {"max": 0.5},
                "templateVariables": {"direction": "inbound"},
            }
        ],
        name="podinfo-app",
    )
    metrics = subject.analysis.metrics
    assert metrics
    model = TemplateModel.for_metric(subject, metrics[0])
    assert (model.name, model.namespace, model.target) == ("podinfo-app", "test", "podinfo-app")
    assert (model.service, model.ingress, model.route) == ("podinfo-app", "podinfo-app", "podinfo-app")
    assert model.interval == "1m"  # Flagger's default metric window
    assert model.variables == {"direction": "inbound"}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('{{ "x" * 3000000000 }}', "unexpected '\\*' in action"),
        ("{{ name.center(3000000000) }}", "can't give argument to non-function"),
        ("{{ range (3000000000) }}x{{ end }}", "over budget: rendering takes"),
        ('{{ printf "%999999999s" name }}', "over budget: printf width"),
        ("{{ name | upper }}", r"\{\{ upper \}\} is not a template variable"),
    ],
)
def test_templates_substitute_values_only(query: str, problem: str) -> None:
    # A MetricTemplate author must not be able to make the controller compute (or allocate) anything.
    with pytest.raises(TemplateError, match=problem):
        render(query, MODEL)


def test_printing_all_variables_looks_like_go() -> None:
    assert render("{{ variables }}", MODEL) == "map[direction:inbound]"


@pytest.mark.parametrize(
    ("query", "rendered"),
    [
        ('{{ if eq variables.direction "inbound" }}in{{ else }}out{{ end }}', "in"),
        ('{{ if ne (index variables "direction") "inbound" }}a{{ else if true }}b{{ end }}', "b"),
        ("{{ with variables.direction }}dir={{ . }}{{ end }}", "dir=inbound"),
        ("{{ range $k, $v := variables }}{{ $k }}={{ $v }};{{ end }}", "direction=inbound;"),
        ("{{ $w := interval }}{{ $w }}/{{ $w | printf \"%s!\" }}", "1m/1m!"),
        ('{{ printf "%s-%d-%5.2f" target 3 1.5 }}', "podinfo-3- 1.50"),
        ("{{ len namespace }} {{ and 0 1 }} {{ or 0 2 }} {{ not false }}", "4 0 2 true"),
        ('{{ range $i := 3 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}', "02"),
        ("{{ print 1 2 }} {{ print \"a\" \"b\" }} {{ 1.5e6 }} {{ 100000.0 }}", "1 2 ab 1.5e+06 100000"),
        ('{{ urlquery "a b&c" }} {{ slice target 0 3 }}', "a+b%26c pod"),
    ],
)
def test_go_control_structures_and_builtins(query: str, rendered: str) -> None:
    assert render(query, MODEL) == rendered


@pytest.mark.parametrize(
    "query",
    [
        # Four nested loops over a 150-character variable: ~5e8 iterations in the old renderer.
        "{{ range $a := 150 }}{{ range $b := 150 }}{{ range $c := 150 }}{{ range $d := 150 }}x"
        "{{ end }}{{ end }}{{ end }}{{ end }}",
        # Thirty doublings of a string.
        "{{ $x := target }}" + '{{ $x = printf "%s%s" $x $x }}' * 30 + "{{ $x }}",
        "{{ range $a := 100000 }}{{ end }}",
    ],
)
def test_hostile_templates_fail_within_the_budget(query: str) -> None:
    with pytest.raises(BudgetExceeded, match="over budget"):
        render(query, MODEL)


def test_the_output_is_capped() -> None:
    with pytest.raises(BudgetExceeded, match="larger than 1 KiB"):
        render("{{ range $i := 600 }}xy{{ end }}", MODEL, Budget(max_output=1024, seconds=60))
