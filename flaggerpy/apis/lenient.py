"""Parse a resource even when parts of it are bad, so that every problem can be reported in one go.

Pydantic stops at the first bad value of each field; the cross-field checks need a parsed model. Cutting the bad
values out and parsing again gives that model, and tells which checks would now be misled by a missing field.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flaggerpy.apis.errors import FieldError, from_validation_error, join_path

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
    failure = first
    for _ in range(_MAX_PRUNE_ROUNDS):
        progress = False
        for error in failure.errors(include_url=False):
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
            failure = again
    return None, errors, cuts


def unaffected(problems: list[FieldError], cuts: list[Loc]) -> list[FieldError]:
    """The semantic problems that a cut field cannot have caused.

    A cut field looks absent to the cross-field checks, which could then report it (or a field of the same object
    that goes with it) missing: problems on a cut field, on an object holding one, and on the plain fields beside
    one are dropped. Problems deeper inside a sibling (``metrics[0]`` beside a cut ``stepWeight``) are kept, so one
    run reports them all.
    """
    cut_paths = {join_path(*cut) for cut in cuts}
    parents = {join_path(*cut[:-1]) for cut in cuts}
    kept = []
    for problem in problems:
        path = problem.field
        if any(path == cut or cut.startswith((f"{path}.", f"{path}[")) for cut in cut_paths):
            continue
        parent, _, leaf = path.rpartition(".")
        if parent in parents and "[" not in leaf:
            continue
        kept.append(problem)
    return kept
