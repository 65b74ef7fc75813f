"""Semantic checks of a parsed Canary: ranges, cross-field rules and what Gateway API routing can express.

Type and shape errors are pydantic's (translated in ``errors.py``); these run on a well-formed Canary and return
every problem at once, each with the JSON path of the field to change.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from flaggerpy.apis.errors import FieldError, from_validation_error, join_path

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import (
        Canary,
        CanaryAnalysis,
        CanaryMetric,
        CanaryService,
        HTTPMatchRequest,
        SessionAffinity,
    )

GATEWAY_PROVIDERS = ("gatewayapi", "gatewayapi:v1", "gatewayapi:v1beta1")
TARGET_KINDS = ("Deployment", "DaemonSet")
BUILTIN_METRICS = ("request-success-rate", "request-duration")


_MAX_PRUNE_ROUNDS = 8

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def _prune_point(error: Any) -> Loc:
    """Where to cut the input so that this error disappears: the bad value, or the object missing a field."""
    loc: Loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    if error["type"] == "missing":
        loc = loc[:-1]
    # Cutting one list item would shift the indexes later messages name; cut the whole list instead.
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    return loc


def _cut(data: Any, loc: Loc) -> bool:
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def parse_leniently(model: type[M], obj: dict[str, Any]) -> tuple[M | None, list[FieldError], list[Loc]]:
    """Validate ``obj``; on errors, also try the object with the bad fields cut out.

    Returns the model parsed from what was left (None when even that fails, e.g. ``spec`` itself is unusable),
    the translated errors of the first attempt, and the cut locations, so semantic checks can still run on the
    rest and every problem is reported in one go.
    """
    try:
        return model.model_validate(obj), [], []
    except ValidationError as exc:
        first = exc
    errors = from_validation_error(first)
    data = copy.deepcopy(obj)
    cuts: list[Loc] = []
    exc = first
    for _ in range(_MAX_PRUNE_ROUNDS):
        progress = False
        for error in exc.errors(include_url=False):
            point = _prune_point(error)
            # The top-level fields (spec) are never cut: without them nothing is left to check.
            if len(point) < 2 or not _cut(data, point):
                continue
            cuts.append(point)
            progress = True
        if not progress:
            return None, errors, cuts
        try:
            return model.model_validate(data), errors, cuts
        except ValidationError as again:
            exc = again
    return None, errors, cuts


def unaffected(problems: list[FieldError], cuts: list[Loc]) -> list[FieldError]:
    """The semantic problems that do not involve a cut field's object or its other fields.

    A cut field looks absent to the cross-field checks, which would then report it missing; problems on the
    cut field's parent object and its siblings are dropped, deeper ones kept.
    """
    parents = {join_path(*cut[:-1]) for cut in cuts}
    kept = []
    for problem in problems:
        path = problem.field
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        if path in parents or parent in parents or _list_parent(path) in parents:
            continue
        kept.append(problem)
    return kept


def _list_parent(path: str) -> str:
    """``a.b[2]`` → ``a``, the object holding the list; other paths unchanged."""
    if path.endswith("]") and "[" in path:
        head = path[: path.rindex("[")]
        return head.rsplit(".", 1)[0] if "." in head else ""
    return path


def canary_problems(canary: Canary) -> list[FieldError]:
    """Every semantic problem of ``canary``'s spec; empty when it can be released."""
    spec = canary.spec
    problems: list[FieldError] = []
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
        problems += _analysis_problems(spec.analysis, spec.analysis_path)
    return problems


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
    for field in ("scheme", "authority"):
        if getattr(match, field) is not None:
            problems.append(FieldError(join_path(*at, field), "not supported by Gateway API routing"))
    if match.method is not None and match.method.kind not in (None, "exact"):
        problems.append(FieldError(join_path(*at, "method"), "Gateway API matches the method only exactly"))
    return problems


def _analysis_problems(analysis: CanaryAnalysis, at: str) -> list[FieldError]:
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
        problems.append(FieldError(f"{at}.stepWeights", "set either stepWeight or stepWeights, not both"))

    if iterations and (analysis.step_weight is not None or steps):
        problems.append(
            FieldError(
                f"{at}.iterations",
                "set iterations (A/B testing, blue/green) or stepWeight/stepWeights (canary), not both",
            )
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
        problems.append(FieldError(f"{at}.mirror", "needs iterations (blue/green) or mirrorWeight (canary)"))
    if analysis.mirror_weight and not analysis.mirror:
        problems.append(FieldError(f"{at}.mirrorWeight", "needs mirror: true"))
    if analysis.mirror and analysis.match:
        problems.append(FieldError(f"{at}.mirror", "cannot be combined with A/B testing (analysis.match)"))

    for i, match in enumerate(analysis.match or ()):
        problems += _match_problems(match, (at, "match", i))
    if analysis.session_affinity is not None:
        problems += _affinity_problems(
            analysis.session_affinity, f"{at}.sessionAffinity", iterations, bool(analysis.match)
        )
    names: dict[str, int] = {}
    for i, metric in enumerate(analysis.metrics or ()):
        problems += _metric_problems(metric, f"{at}.metrics[{i}]")
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


def _affinity_problems(affinity: SessionAffinity, at: str, iterations: int, ab: bool) -> list[FieldError]:
    problems: list[FieldError] = []
    if not affinity.cookie_name:
        problems.append(FieldError(f"{at}.cookieName", "required"))
    elif affinity.primary_cookie_name == affinity.cookie_name:
        problems.append(FieldError(f"{at}.primaryCookieName", "must differ from cookieName"))
    if iterations or ab:
        problems.append(FieldError(at, "works only with a weighted canary release (stepWeight/stepWeights)"))
    return problems


def _metric_problems(metric: CanaryMetric, at: str) -> list[FieldError]:
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
        problems.append(FieldError(f"{at}.thresholdRange", "required (min and/or max the value must stay within)"))
    if metric.template_ref is not None and metric.query:
        problems.append(FieldError(f"{at}.query", "set either query or templateRef, not both"))
    return problems
