"""Label and field selectors, parsed from their query-string form.

Label selectors support ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key`` (exists) and ``!key`` (does not exist).
Field selectors support ``=``, ``==`` and ``!=`` on any dotted path of built-in kinds (``metadata.name``,
``involvedObject.kind``, ``status.phase``, ...), a superset of what kube-apiserver allows; custom resources allow
only ``metadata.name`` and ``metadata.namespace``, as kube-apiserver does for CRDs without selectableFields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flaggerpy.sandbox.apiserver.errors import bad_request

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s,]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CUSTOM_RESOURCE_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Requirement:
    """One clause of a selector: ``key op values``."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, value: str | None) -> bool:
        """Whether a label or field value (None when absent) satisfies this clause."""
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values


def _split_clauses(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` parentheses."""
    clauses: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(ch)
    clauses.append("".join(current))
    return [c for c in clauses if c.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``labelSelector``; raises a 400 StatusError naming the bad clause."""
    if not text:
        return []
    requirements = []
    for clause in _split_clauses(text):
        if m := _SET_RE.match(clause):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), "in" if m.group(2) == "in" else "notin", values))
        elif m := _EQ_RE.match(clause):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(clause):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {clause.strip()!r} in labelSelector {text!r}")
    for requirement in requirements:
        for value in requirement.values:
            if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
                raise bad_request(f"unable to parse requirement: values[0][{requirement.key}]: Invalid value: "
                                  f"{value!r}: a valid label must be an empty string or consist of alphanumeric "
                                  "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                                  "character")
    return requirements


def parse_field_selector(text: str | None) -> list[Requirement]:
    """Parse ``fieldSelector`` (equality clauses only, like kube-apiserver)."""
    if not text:
        return []
    requirements = []
    for clause in _split_clauses(text):
        m = _EQ_RE.match(clause)
        if not m:
            raise bad_request(f"invalid selector: {clause.strip()!r} in fieldSelector {text!r}")
        op = "!=" if m.group(2) == "!=" else "="
        requirements.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
    return requirements


def field_value(obj: dict[str, Any], path: str) -> str | None:
    """The value at a dotted path as the string a field selector compares with."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def matcher(label_selector: str | None, field_selector: str | None,
            allowed_fields: frozenset[str] | None = None) -> Callable[[dict[str, Any]], bool] | None:
    """A predicate for objects, or None when neither selector restricts anything. With ``allowed_fields``, a field
    selector on any other field is refused (400), as kube-apiserver refuses it."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if allowed_fields is not None:
        for requirement in fields:
            if requirement.key not in allowed_fields:
                raise bad_request(f"field label not supported: {requirement.key}")
    if not labels and not fields:
        return None

    def match(obj: dict[str, Any]) -> bool:
        obj_labels = (obj.get("metadata") or {}).get("labels") or {}
        if not all(r.matches(obj_labels.get(r.key)) for r in labels):
            return False
        return all(r.matches(field_value(obj, r.key)) for r in fields)

    return match


def match_label_selector(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Match a structured ``LabelSelector`` (matchLabels + matchExpressions), e.g. a Deployment's selector."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        req = Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ()))
        if not req.matches(labels.get(expr["key"])):
            return False
    return True
