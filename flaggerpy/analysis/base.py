"""The contract between the canary engine and the analysis code.

The engine (``flaggerpy.canary``) calls an :class:`Analyzer` once per analysis step; it never knows which metric
provider or webhook type is behind it. Lookups of MetricTemplates, AlertProviders and Secrets go through
:class:`ObjectLookup`, so the engine decides whether they come from informer caches or the API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import AlertProvider, Canary, MetricTemplate


class HookType(enum.StrEnum):
    """Flagger's webhook types (``analysis.webhooks[].type``)."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


@dataclass(frozen=True)
class MetricResult:
    """The outcome of one metric check at one analysis step."""

    name: str
    value: float | None
    passed: bool
    min: float | None = None
    max: float | None = None
    dry_run: bool = False
    skipped: bool = False
    error: str | None = None
    no_data: bool = False
    """The query found no values (Flagger words this failure differently from a failed query)."""

    @property
    def fails_step(self) -> bool:
        """Whether this result fails the analysis step: a dry-run metric reports its verdict but never fails it."""
        return not self.passed and not self.dry_run


@dataclass(frozen=True)
class WebhookResult:
    """The outcome of one webhook call. ``passed`` is False on a non-2xx answer, a timeout or a network error."""

    name: str
    type: HookType
    passed: bool
    status_code: int | None = None
    error: str | None = None
    # The hook's muteAlert: the engine sends no alert about this hook's failure.
    mute_alert: bool = False


@dataclass(frozen=True)
class StepContext:
    """What the engine knows about the step being analysed; rendered into webhook payloads and templates."""

    phase: str
    checksum: str
    canary_weight: int = 0
    iteration: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ObjectLookup(Protocol):
    """Where the analysis finds the objects a Canary references."""

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        """The MetricTemplate, or None when it does not exist."""
        ...

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        """The AlertProvider, or None when it does not exist."""
        ...

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, base64-decoded to text, or None when it does not exist."""
        ...


class Analyzer(Protocol):
    """Runs a canary's metric checks and webhooks. Implemented by ``flaggerpy.analysis.checks``."""

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """Run every ``analysis.metrics[]`` check concurrently and judge each against its thresholdRange."""
        ...

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """Call every ``analysis.webhooks[]`` of ``hook_type`` concurrently; an empty list when there are none."""
        ...


class Notifier(Protocol):
    """Sends alerts for a canary (``analysis.alerts[]``) and to the controller-wide default channel."""

    async def notify(self, canary: Canary, message: str, severity: str, fields: dict[str, str]) -> None:
        """Deliver ``message`` to every alert whose severity admits ``severity`` (info < warn < error)."""
        ...
