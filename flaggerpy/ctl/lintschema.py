"""Fields the API server would drop: every key the CRD's structural schema does not know, with a did-you-mean.

kube-apiserver prunes unknown fields of a custom resource silently, so a typo (``stepWeigth``) applies cleanly and
does nothing. The schema walked here is the one ``deploy/crds/`` is generated from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cache
from typing import Any

from flaggerpy.apis.crds import openapi_schema
from flaggerpy.apis.errors import FieldError, join_path
from flaggerpy.apis.flagger import AlertProvider, Canary, MetricTemplate

MODELS: dict[str, type[Canary | MetricTemplate | AlertProvider]] = {
    "Canary": Canary, "MetricTemplate": MetricTemplate, "AlertProvider": AlertProvider,
}
# Checked by the API server itself (ObjectMeta), not by the CRD schema; status is the controller's.
_NOT_PRUNED = ("metadata", "status")


@cache
def schema_of(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of a flagger.app kind."""
    return openapi_schema(MODELS[kind])


def unknown_fields(kind: str, body: dict[str, Any]) -> list[FieldError]:
    """A warning per field of ``body`` that the CRD schema of ``kind`` would prune, naming the closest known one."""
    return list(_walk(schema_of(kind), body, ()))


def _suggest(name: str, known: list[str]) -> str:
    lowered = {k.lower(): k for k in known}
    match = lowered.get(name.lower()) or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.7)), None)
    return f"; did you mean {match!r}?" if match else f" (known here: {', '.join(sorted(known))})"


def _walk(schema: dict[str, Any], value: Any, at: tuple[str | int, ...]) -> Iterator[FieldError]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if not at and key in _NOT_PRUNED:
                continue
            if properties is not None and key in properties:
                yield from _walk(properties[key], child, (*at, str(key)))
            elif isinstance(extra, dict):
                yield from _walk(extra, child, (*at, str(key)))
            elif properties is not None:
                yield FieldError(join_path(*at, str(key)), "unknown field: the API server drops it"
                                 + _suggest(str(key), list(properties)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk(schema["items"], item, (*at, i))
