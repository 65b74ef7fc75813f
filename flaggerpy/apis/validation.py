"""Semantic checks of a parsed Canary: rules between fields and what Gateway API routing can express.

Types and single-field ranges are checked while parsing (pydantic, translated in ``errors.py``); these run on a
parsed Canary and return every problem at once, each with the JSON path of the field to change.

Combinations Flagger accepts and resolves by precedence (``stepWeights`` over ``stepWeight``, ``iterations`` over
``stepWeight``, mirroring only for blue/green, ...) are warnings, not problems: a manifest written for Flagger must
apply and behave the same, so the engine follows Flagger's precedence and reports what it ignores as a Warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flaggerpy.apis.errors import FieldError, join_path
from flaggerpy.apis.flagger import BUILTIN_METRICS, GATEWAY_PROVIDERS

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import (
        Canary,
        CanaryAnalysis,
        CanaryMetric,
        CanaryService,
        HTTPMatchRequest,
        SessionAffinity,
    )

TARGET_KINDS = ("Deployment", "DaemonSet")


def canary_problems(canary: Canary) -> list[FieldError]:
    """Every semantic problem of ``canary``'s spec; empty when it can be released."""
    return _findings(canary)[0]


def canary_warnings(canary: Canary) -> list[FieldError]:
    """Fields Flagger accepts but ignores in this combination, each with what is ignored and why."""
    return _findings(canary)[1]


def _findings(canary: Canary) -> tuple[list[FieldError], list[FieldError]]:
    spec = canary.spec
    problems: list[FieldError] = []
    warnings: list[FieldError] = []
    if spec.provider is not None and spec.provider not in GATEWAY_PROVIDERS:
        problems.append(
            FieldError(
                "spec.provider",
                f'"{spec.provider}" is not a Gateway API provider ({", ".join(GATEWAY_PROVIDERS)})',
            )
        )
    kind = spec.target_ref.kind
    if kind is not None and kind not in TARGET_KINDS:
        problems.append(FieldError("spec.targetRef.kind", "must be Deployment or DaemonSet"))
    problems += _service_problems(spec.service)
    if spec.analysis is None:
        problems.append(FieldError("spec.analysis", "required"))
    else:
        problems += _analysis_problems(spec.analysis, spec.analysis_path, warnings)
    return problems, warnings


def _service_problems(service: CanaryService) -> list[FieldError]:
    problems: list[FieldError] = []
    if not service.gateway_refs:
        problems.append(FieldError("spec.service.gatewayRefs", "required: name at least one Gateway for the HTTPRoute"))
    for i, match in enumerate(service.match or ()):
        problems += _match_problems(match, ("spec", "service", "match", i))
    if service.rewrite is not None and service.rewrite.type == "ReplacePrefixMatch":
        prefixed = any(m.uri is not None and m.uri.prefix is not None for m in service.match or ())
        if not prefixed:
            problems.append(
                FieldError("spec.service.rewrite.type", "ReplacePrefixMatch needs a service.match with uri.prefix")
            )
    return problems


def _match_problems(match: HTTPMatchRequest, at: tuple[str | int, ...]) -> list[FieldError]:
    """What Gateway API cannot express: HTTPRoute matches headers and query params only exactly or by regex."""
    problems: list[FieldError] = []
    for field, rules in (("headers", match.headers), ("queryParams", match.query_params)):
        for name, rule in (rules or {}).items():
            if rule.kind in ("prefix", "suffix"):
                problems.append(
                    FieldError(
                        join_path(*at, field, name, rule.kind),
                        "Gateway API matches headers and query params only by exact or regex",
                    )
                )
    if match.uri is not None and match.uri.kind == "suffix":
        problems.append(
            FieldError(join_path(*at, "uri", "suffix"), "Gateway API matches paths by exact, prefix or regex")
        )
    for field in ("scheme", "authority", "without_headers"):
        if getattr(match, field) is not None:
            name = "withoutHeaders" if field == "without_headers" else field
            problems.append(FieldError(join_path(*at, name), "not supported by Gateway API routing"))
    if match.method is not None and match.method.kind not in (None, "exact"):
        problems.append(FieldError(join_path(*at, "method"), "Gateway API matches the method only exactly"))
    return problems


def _analysis_problems(analysis: CanaryAnalysis, at: str, warnings: list[FieldError]) -> list[FieldError]:
    problems: list[FieldError] = []
    iterations = analysis.iterations or 0

    # Ranges of single fields are checked while parsing; these are the rules between fields.
    if (
        analysis.step_weight is not None
        and analysis.max_weight is not None
        and analysis.max_weight < analysis.step_weight
    ):
        problems.append(FieldError(f"{at}.maxWeight", f"must be >= stepWeight ({analysis.step_weight})"))

    steps = analysis.step_weights or []
    if analysis.step_weights is not None and not steps:
        problems.append(FieldError(f"{at}.stepWeights", "must not be empty"))
    for i, weight in enumerate(steps):
        if i > 0 and weight <= steps[i - 1]:
            problems.append(
                FieldError(f"{at}.stepWeights[{i}]", f"must be greater than the previous step ({steps[i - 1]})")
            )
        elif analysis.max_weight is not None and analysis.max_weight < weight:
            problems.append(FieldError(f"{at}.stepWeights[{i}]", f"exceeds maxWeight ({analysis.max_weight})"))
    if steps and analysis.step_weight is not None:
        warnings.append(FieldError(f"{at}.stepWeight", "ignored: stepWeights is set and takes precedence"))

    if iterations and (analysis.step_weight is not None or steps):
        name = "stepWeights" if steps else "stepWeight"
        warnings.append(
            FieldError(f"{at}.{name}", "ignored: iterations is set, so the release is A/B testing or blue/green")
        )
    if analysis.match and not iterations:
        problems.append(FieldError(f"{at}.iterations", "required for A/B testing (analysis.match is set)"))
    if not iterations and not analysis.match and analysis.step_weight is None and not steps:
        problems.append(
            FieldError(
                f"{at}.stepWeight",
                "required for a canary release (or set stepWeights; or iterations for A/B and blue/green)",
            )
        )
    if analysis.mirror and not iterations and not analysis.mirror_weight:
        warnings.append(
            FieldError(f"{at}.mirror", "ignored: mirroring needs iterations (blue/green) or mirrorWeight (canary)")
        )
    if analysis.mirror_weight and not analysis.mirror:
        warnings.append(FieldError(f"{at}.mirrorWeight", "ignored: mirror is not true"))
    if analysis.mirror and analysis.match:
        warnings.append(FieldError(f"{at}.mirror", "ignored: A/B testing (analysis.match) does not mirror"))

    for i, match in enumerate(analysis.match or ()):
        problems += _match_problems(match, (at, "match", i))
    if analysis.session_affinity is not None:
        problems += _affinity_problems(analysis.session_affinity, f"{at}.sessionAffinity")
        if iterations or analysis.match:
            warnings.append(
                FieldError(
                    f"{at}.sessionAffinity",
                    "ignored: it works only with a weighted canary release (stepWeight/stepWeights)",
                )
            )
    names: dict[str, int] = {}
    for i, metric in enumerate(analysis.metrics or ()):
        problems += _metric_problems(metric, f"{at}.metrics[{i}]", warnings)
        if metric.name in names:
            problems.append(
                FieldError(f"{at}.metrics[{i}].name", f'"{metric.name}" repeats metrics[{names[metric.name]}]')
            )
        names.setdefault(metric.name, i)
    hooks: dict[str, int] = {}
    for i, hook in enumerate(analysis.webhooks or ()):
        if hook.name in hooks:
            problems.append(
                FieldError(f"{at}.webhooks[{i}].name", f'"{hook.name}" repeats webhooks[{hooks[hook.name]}]')
            )
        hooks.setdefault(hook.name, i)
    return problems


def _affinity_problems(affinity: SessionAffinity, at: str) -> list[FieldError]:
    problems: list[FieldError] = []
    if not affinity.cookie_name:
        problems.append(FieldError(f"{at}.cookieName", "required"))
    elif affinity.primary_cookie_name == affinity.cookie_name:
        problems.append(FieldError(f"{at}.primaryCookieName", "must differ from cookieName"))
    return problems


def _metric_problems(metric: CanaryMetric, at: str, warnings: list[FieldError]) -> list[FieldError]:
    problems: list[FieldError] = []
    if metric.template_ref is None and not metric.query and metric.name not in BUILTIN_METRICS:
        problems.append(FieldError(at, f"needs templateRef or a builtin name ({', '.join(BUILTIN_METRICS)})"))
    rng = metric.threshold_range
    if rng is not None:
        if rng.min is None and rng.max is None:
            problems.append(FieldError(f"{at}.thresholdRange", "needs min or max"))
        elif rng.min is not None and rng.max is not None and rng.min > rng.max:
            problems.append(FieldError(f"{at}.thresholdRange", f"min ({rng.min:g}) must be <= max ({rng.max:g})"))
    elif metric.threshold is None:
        warnings.append(FieldError(f"{at}.thresholdRange", "not set: the check fails only when the query fails"))
    if metric.template_ref is not None and metric.query:
        warnings.append(FieldError(f"{at}.query", "ignored: templateRef is set and takes precedence"))
    return problems
