"""Rendering of MetricTemplate queries with Flagger's variables, within a budget.

Flagger writes queries in Go's text/template with niladic functions: ``{{ name }}``, ``{{ namespace }}``,
``{{ target }}``, ``{{ service }}``, ``{{ ingress }}``, ``{{ route }}``, ``{{ interval }}`` and
``{{ variables.key }}`` (the metric's ``templateVariables``; ``{{ index variables "my-key" }}`` for names Go
cannot write after a dot). The language is Go's (:mod:`flaggerpy.analysis.gotemplate`): ``{{- x -}}`` trimming,
``{{/* comments */}}``, ``if``/``else``/``range``/``with``, ``$x :=``, pipelines and Go's builtins. A template
is a tenant's text, so every render runs under a :class:`Budget` (64 KiB of output, a step count and a few
milliseconds); past it the check fails, and nothing else in the controller waits for it.
A variable that does not exist is an error naming it, never an empty string.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flaggerpy.analysis import gotemplate
from flaggerpy.analysis.gotemplate import Budget, BudgetExceeded, TemplateError
from flaggerpy.apis.flagger import METRIC_INTERVAL

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary, CanaryMetric

__all__ = ["DEFAULT_BUDGET", "Budget", "BudgetExceeded", "TemplateError", "TemplateModel", "render"]

DEFAULT_BUDGET = Budget()
VARIABLES = ("name", "namespace", "target", "service", "ingress", "route", "interval", "variables")


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


class _Variables(Mapping[str, str]):
    """templateVariables as the template sees them: a distinct type, so a missing key lists the defined ones."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _missing_function(name: str) -> TemplateError:
    return TemplateError(f"{{{{ {name} }}}} is not a template variable (known: {', '.join(VARIABLES)})")


def _missing_key(owner: Any, key: str) -> TemplateError:
    if isinstance(owner, _Variables):
        defined = ", ".join(sorted(owner)) or "none"
        return TemplateError(
            f"{{{{ variables.{key} }}}} is not defined: add it to the metric's templateVariables (defined: {defined})"
        )
    return TemplateError(f"map has no entry for key {key!r}")


@functools.lru_cache(maxsize=512)
def _compile(query: str) -> list[Any]:
    return gotemplate.parse(query)


def render(query: str, model: TemplateModel, budget: Budget = DEFAULT_BUDGET) -> str:
    """The query with every ``{{ ... }}`` evaluated; TemplateError (BudgetExceeded past ``budget``) says why not."""
    values: dict[str, Any] = {
        "name": model.name,
        "namespace": model.namespace,
        "target": model.target,
        "service": model.service,
        "ingress": model.ingress,
        "route": model.route,
        "interval": model.interval,
        "variables": _Variables(model.variables),
    }
    functions = {key: (lambda value=value: value) for key, value in values.items()}
    try:
        return gotemplate.render(query, functions, budget=budget, missing_function=_missing_function,
                                 missing_key=_missing_key, tree=_compile(query))
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"query template over budget: {exc}") from None
    except RecursionError:
        raise BudgetExceeded("query template over budget: nested too deeply") from None
