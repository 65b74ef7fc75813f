"""The metrics half of the analysis: resolve, render, query and judge every ``analysis.metrics[]`` entry.

All checks of a step run concurrently, each under its own timeout, so one slow backend delays neither the other
checks nor (since the engine awaits steps per canary) other canaries beyond that timeout. Failures never raise:
each becomes a :class:`MetricResult` whose ``error`` says what happened.

Beyond Flagger: ``onNoData: skip`` turns "no values found" into a skipped, passing check (Flagger #1353), and
``dryRun: true`` reports the verdict without failing the step (see :attr:`MetricResult.fails_step`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from flaggerpy.analysis.base import MetricResult, ObjectLookup, StepContext
from flaggerpy.analysis.builtin import DEFAULT_FLAVOUR, FLAVOUR_ANNOTATION, Flavour, builtin_query, parse_flavour
from flaggerpy.analysis.providers import (
    DEFAULT_TIMEOUT,
    NoData,
    ProviderError,
    ProviderSpec,
    Unreachable,
    run_query,
)
from flaggerpy.analysis.providers.base import deadline
from flaggerpy.analysis.templates import TemplateError, TemplateModel, render
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import MetricTemplateProvider
from flaggerpy.log import get_logger
from flaggerpy.outbound import OutboundPolicy, SessionUser, address_problem, ambient_credentials

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary, CanaryMetric, CrossNamespaceObjectReference, ThresholdRange

# Flagger's default for --metrics-server.
DEFAULT_METRICS_SERVER = "http://prometheus:9090"

log = get_logger(__name__)


class MetricSetupError(Exception):
    """A metric cannot be measured because of the Canary or its references (missing template, secret...)."""


@dataclass(frozen=True)
class MetricSettings:
    """Controller-wide settings of the metric checks (``--metrics-server``, builtin flavour, query timeout)."""

    metrics_server: str = DEFAULT_METRICS_SERVER
    builtin_flavour: Flavour = DEFAULT_FLAVOUR
    query_timeout: float = DEFAULT_TIMEOUT
    same_namespace_only: bool = False
    """Refuse a ``templateRef`` to another namespace than the Canary's (Flagger's ``-no-cross-namespace-refs``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "builtin_flavour", parse_flavour(self.builtin_flavour))
        if self.query_timeout <= 0:
            raise ValueError(f"metric query timeout must be > 0, not {self.query_timeout}")


def judge(value: float, bounds: ThresholdRange) -> str | None:
    """Why ``value`` is outside ``bounds`` (both ends inclusive, as in Flagger), or None when it is inside."""
    if bounds.min is not None and value < bounds.min:
        return f"value {value:g} is below the minimum {bounds.min:g}"
    if bounds.max is not None and value > bounds.max:
        return f"value {value:g} is above the maximum {bounds.max:g}"
    return None


class MetricChecker(SessionUser):
    """Runs a canary's metric checks. Use as an async context manager, or call :meth:`close`."""

    def __init__(
        self,
        lookup: ObjectLookup,
        settings: MetricSettings | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        super().__init__(session, policy)
        self._lookup = lookup
        self._settings = settings or MetricSettings()

    async def check_metrics(self, canary: Canary, step: StepContext) -> list[MetricResult]:
        """Run every ``analysis.metrics[]`` check concurrently and judge each against its thresholdRange."""
        metrics = canary.analysis.metrics or []
        return list(await asyncio.gather(*(self._check(canary, metric) for metric in metrics)))

    async def _check(self, canary: Canary, metric: CanaryMetric) -> MetricResult:
        bounds = metric.effective_range
        dry_run = bool(metric.dry_run)

        def result(value: float | None, passed: bool, error: str | None, skipped: bool = False,
                   no_data: bool = False) -> MetricResult:
            return MetricResult(
                name=metric.name,
                value=value,
                passed=passed,
                min=bounds.min,
                max=bounds.max,
                dry_run=dry_run,
                skipped=skipped,
                error=error,
                no_data=no_data,
            )

        try:
            value = await self._measure(canary, metric)
        except NoData as exc:
            message = str(exc)
            if metric.is_builtin:
                message += f": probably {canary.spec.target_ref.name}.{canary.metadata.namespace} gets no traffic"
            if metric.skip_on_no_data:
                return result(None, True, message, skipped=True, no_data=True)
            return result(None, False, message, no_data=True)
        except Unreachable as exc:
            # "no data" would send the user looking at the canary's traffic; the backend is what is down.
            return result(None, False, f"{exc.provider.capitalize()} unreachable: {exc.message}")
        except (ProviderError, TemplateError, MetricSetupError, SpecError) as exc:
            return result(None, False, str(exc))
        except Exception as exc:
            # A bug here must not take the worker down; it fails this check loudly instead.
            log.exception("metric check crashed", canary=canary.key, metric=metric.name)
            return result(None, False, f"internal error: {exc.__class__.__name__}: {exc}")
        problem = judge(value, bounds)
        if not math.isfinite(value):
            # JSON (and so Canary.status) cannot hold an infinity: report the verdict with the value in words.
            return result(None, problem is None, problem or f"value {value:g} (accepted by the thresholdRange)")
        return result(value, problem is None, problem)

    async def _measure(self, canary: Canary, metric: CanaryMetric) -> float:
        model = TemplateModel.for_metric(canary, metric)
        interval = metric.interval_seconds
        if metric.template_ref is not None:
            provider, credentials, query = await self._template(canary, metric.template_ref)
            ref = metric.template_ref
            where = f"spec.query of MetricTemplate {ref.namespace or canary.metadata.namespace}/{ref.name}"
        else:
            provider, credentials = self._metrics_server(canary), {}
            query = metric.query if metric.query else self._builtin(canary, metric)
            where = f"spec.analysis.metrics[{metric.name}].query"
        try:
            rendered = render(query, model)
        except TemplateError as exc:
            # The user fixes the query text, so say where it lives.
            raise TemplateError(f"{where}: {exc}") from exc
        log.debug("metric query", canary=canary.key, metric=metric.name, query=rendered)
        with ambient_credentials(self._policy.ambient_credentials):
            return await run_query(
                rendered,
                provider,
                credentials,
                session=self._client(),
                timeout=self._settings.query_timeout,
                interval=interval,
            )

    def _builtin(self, canary: Canary, metric: CanaryMetric) -> str:
        flavour: Flavour | str = self._settings.builtin_flavour
        chosen = (canary.metadata.annotations or {}).get(FLAVOUR_ANNOTATION)
        if chosen is not None:
            try:
                flavour = parse_flavour(chosen)
            except ValueError as exc:
                raise MetricSetupError(f"metadata.annotations[{FLAVOUR_ANNOTATION}]: {exc}") from None
        try:
            return builtin_query(metric.name, flavour)
        except KeyError:
            raise MetricSetupError(
                f"metric {metric.name!r} needs a templateRef (or is a builtin: request-success-rate, request-duration)"
            ) from None

    def _metrics_server(self, canary: Canary) -> ProviderSpec:
        address = canary.spec.metrics_server or self._settings.metrics_server
        where = "spec.metricsServer" if canary.spec.metrics_server else "the controller's --metrics-server"
        if not address.startswith(("http://", "https://")):
            raise MetricSetupError(f"{where} {address!r} is not an http(s) URL")
        problem = address_problem(address)
        if problem is not None:
            raise MetricSetupError(f"{where} {problem}")
        return MetricTemplateProvider(type="prometheus", address=address)

    async def _template(
        self, canary: Canary, ref: CrossNamespaceObjectReference
    ) -> tuple[ProviderSpec, Mapping[str, str], str]:
        namespace = ref.namespace or canary.metadata.namespace
        if self._settings.same_namespace_only and namespace != canary.metadata.namespace:
            raise MetricSetupError(f"templateRef {namespace}/{ref.name}: a MetricTemplate in another namespace is "
                                   f"refused (-no-cross-namespace-refs)")
        template = self._lookup.metric_template(namespace, ref.name)
        if template is None:
            raise MetricSetupError(f"MetricTemplate {namespace}/{ref.name} not found")
        provider = template.spec.provider
        credentials: Mapping[str, str] = {}
        if provider.secret_ref is not None:
            # Like Flagger, the Secret lives next to the MetricTemplate, not next to the Canary.
            async with deadline(self._settings.query_timeout, f"Secret {namespace}/{provider.secret_ref.name}"):
                secret = await self._lookup.secret_data(namespace, provider.secret_ref.name)
            if secret is None:
                raise MetricSetupError(
                    f"Secret {namespace}/{provider.secret_ref.name} (spec.provider.secretRef of MetricTemplate "
                    f"{namespace}/{ref.name}) not found"
                )
            credentials = secret
        return provider, credentials, template.spec.query
