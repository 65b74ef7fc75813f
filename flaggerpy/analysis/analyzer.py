"""The engine's :class:`~flaggerpy.analysis.base.Analyzer`: metric checks and webhooks composed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from flaggerpy.analysis.base import HookType, MetricResult, StepContext, WebhookResult
from flaggerpy.analysis.checks import MetricChecker

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary


class HookRunner(Protocol):
    """What the analyzer needs of the webhook runner (``flaggerpy.analysis.webhooks.WebhookRunner``)."""

    async def run(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """Call the canary's webhooks of ``hook_type``."""
        ...


class CanaryAnalyzer:
    """Implements the Analyzer protocol by delegating to a :class:`MetricChecker` and a webhook runner."""

    def __init__(self, metrics: MetricChecker, webhooks: HookRunner) -> None:
        self._metrics = metrics
        self._webhooks = webhooks

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """Run every ``analysis.metrics[]`` check concurrently and judge each against its thresholdRange."""
        return await self._metrics.check_metrics(canary, step)

    async def run_webhooks(self, canary: Canary, hook_type: HookType, step: StepContext) -> list[WebhookResult]:
        """Call every ``analysis.webhooks[]`` of ``hook_type`` concurrently; an empty list when there are none."""
        return await self._webhooks.run(canary, hook_type, step)
