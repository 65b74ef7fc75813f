"""Errors for bad Flagger objects, each naming the field in Flagger's JSON path form.

A user reads these in ``kubectl describe`` (Events, status conditions) and in ``flaggerpy lint``; the path uses the
manifest's camelCase names and ``[i]`` list indexes, so it points at the line to fix: ``spec.analysis.stepWeight:
must be > 0``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``field`` is a JSON path such as ``spec.analysis.stepWeights[2]``."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class SpecError(ValueError):
    """A Flagger object that cannot be used. ``errors`` holds every problem found, not just the first."""

    def __init__(self, errors: Sequence[FieldError], kind: str = "object") -> None:
        self.errors: list[FieldError] = list(errors)
        self.kind = kind
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return f"invalid {self.kind}: {self.errors[0]}"
        lines = "; ".join(str(e) for e in self.errors)
        return f"invalid {self.kind} ({len(self.errors)} problems): {lines}"


def join_path(*parts: str | int) -> str:
    """A JSON path from field names, map keys and list indexes.

    ``("spec", "metrics", 0, "x-y")`` becomes ``spec.metrics[0][x-y]``.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "":
            continue
        elif not out:
            out = part
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            # Map keys such as header names hold dashes and dots; brackets keep the path unambiguous.
            out += f"[{part}]"
    return out or "<root>"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return type(value).__name__


def _problem(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = error.get("input")
    simple = {
        "missing": "required",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "list_type": "must be a list",
        "datetime_type": "must be an RFC 3339 time",
        "datetime_parsing": "must be an RFC 3339 time",
        "datetime_from_date_parsing": "must be an RFC 3339 time",
    }
    if kind in simple:
        if kind.endswith("_type") or kind.endswith("_parsing"):
            return f"{simple[kind]}, not {_describe(given)}"
        return simple[kind]
    if kind in ("literal_error", "enum"):
        return f"{_describe(given)} is not one of {ctx.get('expected', '')}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs >= {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"allows at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{_describe(given)} does not match {ctx.get('pattern')}"
    if kind == "value_error":
        # Our own validators raise ValueError("...") with a message already written for the user.
        return str(ctx.get("error", error["msg"]))
    if kind == "flagger":
        return str(error["msg"])
    return str(error["msg"][:1].lower() + error["msg"][1:])


def from_validation_error(exc: ValidationError, prefix: Iterable[str | int] = ()) -> list[FieldError]:
    """Translate pydantic's errors into :class:`FieldError` with camelCase JSON paths under ``prefix``."""
    head = tuple(prefix)
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        # Locations inside validator functions carry markers such as "function-after[...]"; they are no field.
        loc = [p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        item = FieldError(join_path(*head, *loc), _problem(error))
        key = (item.field, item.problem)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
