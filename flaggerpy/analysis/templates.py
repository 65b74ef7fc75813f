"""Rendering of MetricTemplate queries with Flagger's variables.

Flagger writes queries in Go's text/template with niladic functions: ``{{ name }}``, ``{{ namespace }}``,
``{{ target }}``, ``{{ service }}``, ``{{ ingress }}``, ``{{ route }}``, ``{{ interval }}`` and
``{{ variables.key }}`` (the metric's ``templateVariables``; ``{{ index variables "my-key" }}`` for names Go
cannot write after a dot). Those forms, Go's ``{{- x -}}`` whitespace trimming and ``{{/* comments */}}`` render
the same here through a sandboxed jinja2 environment. Only ``{{ }}`` is template syntax, as in Go: jinja2's
``{% %}`` and ``{# #}`` delimiters are moved out of the way so that a query containing them is left alone.
A variable that does not exist is an error naming it, never an empty string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from flaggerpy.apis.flagger import METRIC_INTERVAL

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary, CanaryMetric

VARIABLES = ("name", "namespace", "target", "service", "ingress", "route", "interval", "variables")

_GO_COMMENT = re.compile(r"\{\{(-?)\s*/\*.*?\*/\s*(-?)\}\}", re.DOTALL)
_GO_INDEX = re.compile(r'\{\{(-?)\s*index\s+variables\s+"([^"\\]*)"\s*(-?)\}\}')
_GO_DOT = re.compile(r"\{\{-?\s*\.([A-Za-z_]\w*)")


class TemplateError(ValueError):
    """A query template cannot be rendered; the message names the variable or the syntax problem."""


@dataclass(frozen=True)
class TemplateModel:
    """The values a query template can use (Flagger's MetricTemplateModel)."""

    name: str
    namespace: str
    target: str
    service: str
    ingress: str
    route: str
    interval: str = METRIC_INTERVAL
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_metric(cls, canary: Canary, metric: CanaryMetric) -> TemplateModel:
        """The model of one ``analysis.metrics[]`` entry of ``canary``, with Flagger's fallbacks to targetRef."""
        spec = canary.spec
        target = spec.target_ref.name
        return cls(
            name=canary.metadata.name,
            namespace=canary.metadata.namespace,
            target=target,
            service=spec.service.name or target,
            ingress=spec.ingress_ref.name if spec.ingress_ref else target,
            route=spec.route_ref.name if spec.route_ref else target,
            interval=metric.interval_text,
            variables=dict(metric.template_variables or {}),
        )


class _Variables:
    """templateVariables as the template sees them.

    Not a dict: ``{{ variables.items }}`` must be the variable named ``items``, not a dict method. A distinct type
    also lets a missing key get a message listing the defined ones.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getattr__(self, key: str) -> str:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __str__(self) -> str:
        # What Go prints for a map[string]string, in case a template prints the whole thing.
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(self._values.items())) + "]"


class _StrictUndefined(jinja2.StrictUndefined):
    """Fails on any use, with a message a MetricTemplate author can act on."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        owner = self._undefined_obj
        key = self._undefined_name
        if isinstance(owner, _Variables):
            defined = ", ".join(sorted(owner._values)) or "none"
            raise TemplateError(
                f"{{{{ variables.{key} }}}} is not defined: add it to the metric's templateVariables "
                f"(defined: {defined})"
            )
        if owner is jinja2.utils.missing:
            raise TemplateError(f"{{{{ {key} }}}} is not a template variable (known: {', '.join(VARIABLES)})")
        raise TemplateError(f"{key!r} is not defined on {type(owner).__name__}")

    __str__ = _fail_with_undefined_error
    __iter__ = _fail_with_undefined_error
    __bool__ = _fail_with_undefined_error
    __len__ = _fail_with_undefined_error


class _QueryEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox that only substitutes values, like Flagger's Go templates.

    Arithmetic and calls are refused: they add nothing Go templates offer, and ``{{ name * 10**10 }}`` or
    ``{{ name.center(10**10) }}`` in a MetricTemplate could otherwise exhaust the controller's memory.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        raise SecurityError(f"operator {operator!r} is not supported in query templates")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        raise SecurityError(f"operator {operator!r} is not supported in query templates")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("calls are not supported in query templates; use {{ name }} or {{ variables.key }}")


_ENV = _QueryEnvironment(
    undefined=_StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    # Go templates have no block or comment tags of their own; these delimiters cannot occur in a query.
    block_start_string="{{%",
    block_end_string="%}}",
    comment_start_string="{{#",
    comment_end_string="#}}",
)
# Only Flagger's variables exist in a query template: no jinja2 filters, tests or globals (range, lipsum...).
_ENV.filters = {}
_ENV.tests = {}
_ENV.globals = {}


@functools.lru_cache(maxsize=512)
def _compile(query: str) -> jinja2.Template:
    dot = _GO_DOT.search(query)
    if dot:
        raise TemplateError(
            f"'{{{{ .{dot.group(1)} }}}}' is Go data-field syntax, which Flagger's templates do not support: "
            f"write {{{{ {dot.group(1)} }}}}"
        )
    source = _GO_COMMENT.sub(lambda m: "{{#" + m.group(1) + " " + m.group(2) + "#}}", query)
    source = _GO_INDEX.sub(lambda m: "{{" + m.group(1) + f" variables[{m.group(2)!r}] " + m.group(3) + "}}", source)
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"query template syntax error on line {exc.lineno}: {exc.message}") from exc


def render(query: str, model: TemplateModel) -> str:
    """The query with every ``{{ ... }}`` replaced; TemplateError names what is wrong."""
    template = _compile(query)
    context = {
        "name": model.name,
        "namespace": model.namespace,
        "target": model.target,
        "service": model.service,
        "ingress": model.ingress,
        "route": model.route,
        "interval": model.interval,
        "variables": _Variables(model.variables),
    }
    try:
        return template.render(context)
    except TemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise TemplateError(f"query template error: {exc}") from exc
    except (TypeError, ValueError, LookupError) as exc:
        raise TemplateError(f"query template error: {exc.__class__.__name__}: {exc}") from exc
