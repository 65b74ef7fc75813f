"""CEL ``x-kubernetes-validations`` rules of CRD schemas, evaluated with the ``common-expression-language``
package (the ``cel`` module) when it is installed.

Each rule runs with ``self`` bound to the value at its schema node, as kube-apiserver does, with property names
escaped the Kubernetes way (``namespace`` -> ``__namespace__``, ``-`` -> ``__dash__``, ...). Rules that cannot be
compiled or evaluated (Kubernetes-only functions such as ``isURL``, ``quantity`` or ``format.*``, or a field read
without a ``has()`` guard) and transition rules (``oldSelf``) are skipped: the sandbox accepts what it cannot
check rather than refusing it. Verdicts are memoised by value, so a write that changes one field re-runs only the
rules whose input changed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from functools import lru_cache
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver.errors import Cause

log = get_logger("flaggerpy.sandbox.cel_rules")

AVAILABLE = importlib.util.find_spec("cel") is not None
_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while",
})
_MAX_VERDICTS = 50_000
_ABSENT: Any = object()
_verdicts: dict[tuple[str, str], bool | None] = {}


def escape(name: str) -> str:
    """A property name as CEL sees it (kube's escaping rules)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not re.fullmatch(r"[A-Za-z_.\-/0-9]+", name):
        return name
    return (name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__")
            .replace("/", "__slash__"))


def _escaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {escape(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def _program(rule: str) -> Any:
    """The compiled rule, or None when it cannot be handled."""
    if "oldSelf" in rule:
        return None
    cel = importlib.import_module("cel")
    try:
        return cel.compile(rule)
    except Exception as exc:  # the binding raises assorted types for syntax it does not support
        log.debug("skipping CEL rule that does not compile", rule=rule, error=str(exc))
        return None


def _evaluate(rule: str, value: Any) -> bool | None:
    """True/False for the rule's verdict, None when it could not be evaluated."""
    program = _program(rule)
    if program is None:
        return None
    try:
        result = program.execute({"self": _escaped(value)})
    except Exception as exc:  # unknown functions and missing fields surface as evaluation errors
        log.debug("skipping CEL rule that does not evaluate", rule=rule, error=str(exc))
        return None
    return result if isinstance(result, bool) else None


def _run(rule: str, value: Any) -> bool | None:
    key = (rule, json.dumps(value, sort_keys=True, separators=(",", ":")))
    if key in _verdicts:
        return _verdicts[key]
    if len(_verdicts) >= _MAX_VERDICTS:
        _verdicts.clear()
    verdict = _evaluate(rule, value)
    _verdicts[key] = verdict
    return verdict


def _check(value: Any, schema: dict[str, Any], path: str, causes: list[Cause], previous: Any = _ABSENT) -> None:
    if value is previous:
        # Rules see only ``self`` (transition rules are skipped), so an unchanged subtree keeps its verdicts.
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            continue
        if _run(rule["rule"], value) is False:
            field = (path + (rule.get("fieldPath") or "")).lstrip(".")
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            # kube-apiserver 1.36 no longer names the value's type here (hack/fidelity.py, case cel_rules).
            causes.append(Cause(field, rule.get("reason", "FieldValueInvalid"), f"Invalid value: {message}"))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            before = previous.get(key, _ABSENT) if isinstance(previous, dict) else _ABSENT
            if key in props:
                _check(item, props[key], f"{path}.{key}" if path else key, causes, before)
            elif isinstance(additional, dict):
                _check(item, additional, f"{path}[{key}]", causes, before)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", causes)


_rules_present: dict[int, tuple[dict[str, Any], bool]] = {}


def _has_rules(schema: dict[str, Any]) -> bool:
    """Whether a schema holds any CEL rule; cached per schema object (CRD schemas are large)."""
    cached = _rules_present.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    present = "x-kubernetes-validations" in json.dumps(schema)
    _rules_present[id(schema)] = (schema, present)
    return present


def evaluate_rules(
    obj: dict[str, Any], schema: dict[str, Any], previous: dict[str, Any] | None = None
) -> list[Cause]:
    """Violations of the schema's CEL rules by ``obj`` (none when the ``cel`` module is not installed).

    ``previous`` is an object these rules passed before; subtrees ``obj`` shares with it are not evaluated again.
    """
    if not AVAILABLE or not _has_rules(schema):
        return []
    causes: list[Cause] = []
    root = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    _check(root, schema, "", causes, _ABSENT if previous is None else previous)
    return causes
