"""The model conventions every Flagger and Gateway API type here shares, and the small field types they use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from flaggerpy.apis.durations import duration_problem


class ApiModel(BaseModel):
    """snake_case attributes with the manifest's camelCase names as aliases.

    Unknown fields are ignored rather than rejected: pruning is the apiserver's job, and a manifest written for a
    newer Flagger must still load.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        validate_assignment=False,
        ser_json_inf_nan="constants",
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as Kubernetes JSON: camelCase keys, unset (None) fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _check_duration(value: str) -> str:
    problem = duration_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "description": "A Go duration such as 30s, 1m or 1m30s."}),
]
"""A Go duration string, checked when the object is parsed; convert with ``parse_duration``."""


def _check_positive(value: str) -> str:
    if not any(c in "123456789" for c in value):
        raise ValueError("must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_check_positive)]
"""A Go duration string longer than zero (intervals and timeouts)."""


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a port number or a port name")
    return value


IntOrString = Annotated[
    int | str,
    BeforeValidator(_int_or_string),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
"""Kubernetes' IntOrString (``targetPort: 9898`` or ``targetPort: http``)."""


def _time_to_text(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Time = Annotated[
    datetime,
    PlainSerializer(_time_to_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""metav1.Time: an RFC 3339 timestamp, written back with second precision like the apiserver does."""
