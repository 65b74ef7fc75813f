"""CanaryReconciler: advances one canary by at most one step of the state machine per call.

Everything is read from informer caches; each step is persisted in ``Canary.status`` (``/status`` with
resourceVersion concurrency) before the call returns, and the return value says when to look again — the time
between steps is a delayed re-add to the work queue, never a sleeping coroutine. Because all progress lives in the
status (including the time of the last step), any replica can pick a canary up where another left it.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from flaggerpy.analysis.base import Analyzer, HookType, MetricResult, Notifier, StepContext, WebhookResult
from flaggerpy.apis.annotations import Action, record_handled
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import GATEWAY_PROVIDERS, METRIC_HISTORY_LIMIT, Canary
from flaggerpy.canary import manual, steps
from flaggerpy.canary import service as svc
from flaggerpy.canary import status as st
from flaggerpy.canary import workload as wl
from flaggerpy.canary.apply import Applier, MissingConfig, workload_resource
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.phases import ACTIVE, Phase, check
from flaggerpy.canary.slots import Slots
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from flaggerpy.log import get_logger
from flaggerpy.routing.base import Router
from flaggerpy.routing.errors import RouteNotOwned

log = get_logger(__name__)

FINALIZER = "finalizer.flagger.app"
# Flagger files every progress message under this one reason; users grep for it.
SYNCED = "Synced"
NORMAL, WARNING = "Normal", "Warning"


class EventSink(Protocol):
    """Records a Kubernetes Event about an object (implemented over the kube layer's EventRecorder)."""

    async def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record ``message`` (never raises)."""
        ...


RouterFor = Callable[[Canary], Router]
StatusObserver = Callable[[Canary, Mapping[str, Any]], None]
"""Called with each status the engine persisted (telemetry publishes phase and weights from it)."""


@dataclass(frozen=True)
class EngineSettings:
    """Engine-wide behaviour; every delay that is not a canary's own interval lives here."""

    config_tracking: bool = True
    """Treat changes of referenced ConfigMaps/Secrets as new revisions and copy them to ``-primary``."""
    max_concurrent_canaries: int = 0
    """New revisions allowed into analysis at once; 0 = unlimited (Flagger #1069)."""
    mesh_provider: str = "gatewayapi:v1"
    """Provider of Canaries without ``spec.provider``."""
    poll_interval: float = 1.0
    """Re-check delay while waiting for something (readiness, acceptance) in case no watch event arrives."""
    stale_cache_retry: float = 0.05
    """Delay before retrying when the cache has not yet caught up with our own last status write."""


@dataclass
class Step:
    """One reconcile's view of one canary."""

    key: str
    obj: dict[str, Any]
    canary: Canary
    plan: steps.Plan
    status: dict[str, Any]
    at: datetime
    target: dict[str, Any] = field(default_factory=dict)
    log: Any = None
    routed: bool = False
    """The route was reconciled in this step."""
    repair_route: bool = False
    """The route must match the status when the step ends (drift repair)."""

    @property
    def name(self) -> str:
        """Flagger's ``name.namespace`` spelling in messages."""
        return f"{self.canary.spec.target_ref.name}.{self.canary.metadata.namespace}"

    @property
    def primary(self) -> str:
        """The primary workload in Flagger's ``name-primary.namespace`` spelling."""
        return f"{wl.primary_name(self.canary.spec.target_ref.name)}.{self.canary.metadata.namespace}"

    @property
    def doc(self) -> dict[str, Any]:
        """The canary as JSON with the status this step is about to persist (the router routes from it)."""
        return {**self.obj, "status": self.status}

    @property
    def phase(self) -> Phase | None:
        """The phase in the working status."""
        return st.phase_of(self.status)

    def move(self, phase: Phase) -> None:
        """Change phase (checked against the transition table) and record a step."""
        check(self.phase, phase)
        st.set_phase(self.status, phase, self.at)
        st.mark_step(self.status, self.at)


@dataclass(frozen=True)
class Revision:
    """What identifies the revision of the target: the pod template hash and tracked config checksums."""

    spec: str
    configs: dict[str, str]
    renames: dict[str, str]


def is_gateway_canary(obj: Mapping[str, Any], mesh_provider: str) -> bool:
    """A Gateway API provider, or none with a Gateway API ``--mesh-provider``: other canaries are another
    controller's business and are left alone."""
    provider = (obj.get("spec") or {}).get("provider") or mesh_provider
    return provider in GATEWAY_PROVIDERS


def _rv_older(cached: str | None, written: str | None) -> bool:
    """Whether the cache still shows an object older than the one we wrote (numeric versions only)."""
    if not cached or not written or not cached.isdigit() or not written.isdigit():
        return False
    return int(cached) < int(written)


class CanaryReconciler:
    """The state machine of design.md, one step per :meth:`reconcile`."""

    def __init__(
        self,
        kube: KubeClient,
        caches: Caches,
        router_for: RouterFor,
        analyzer: Analyzer,
        notifier: Notifier,
        events: EventSink,
        settings: EngineSettings | None = None,
        clock: Callable[[], datetime] = st.now,
        on_status: StatusObserver | None = None,
    ) -> None:
        self._kube = kube
        self._caches = caches
        self._router_for = router_for
        self._analyzer = analyzer
        self._notifier = notifier
        self._events = events
        self.settings = settings or EngineSettings()
        self._clock = clock
        self._apply = Applier(kube, caches)
        self.slots = Slots(self.settings.max_concurrent_canaries)
        self._written: dict[str, str] = {}
        self._on_status = on_status

    # -- entry point ---------------------------------------------------------------------------------------------

    def handles(self, obj: Mapping[str, Any]) -> bool:
        """Whether this controller owns the canary (see :func:`is_gateway_canary`)."""
        return is_gateway_canary(obj, self.settings.mesh_provider)

    async def reconcile(self, key: str) -> float | None:
        """Advance the canary ``namespace/name`` by at most one step; seconds until it wants another look."""
        namespace, _, name = key.partition("/")
        obj = self._caches.get(res.CANARIES, namespace, name)
        if obj is None:
            self._written.pop(key, None)
            self.slots.release(key)
            return None
        if _rv_older(obj["metadata"].get("resourceVersion"), self._written.get(key)):
            return self.settings.stale_cache_retry
        if not self.handles(obj):
            return None
        obj = copy.deepcopy(obj)
        at = self._clock()
        try:
            canary = Canary.from_dict(obj)
            plan = steps.plan_of(canary)
        except SpecError as exc:
            await self._invalid(key, obj, exc, at)
            return None
        step = Step(key, obj, canary, plan, st.working_copy(obj), at, log=log.bind(canary=key))
        try:
            return await self._dispatch(step)
        except SpecError as exc:
            await self._invalid(key, step.obj, exc, at)
            return None
        except RouteNotOwned as exc:
            await self._halt(step, "RouteNotOwned", str(exc), warn=True)
            return plan.interval
        except MissingConfig as exc:
            await self._halt(step, "ConfigNotFound", str(exc), warn=True)
            return plan.interval
        except wl.WorkloadError as exc:
            await self._halt(step, "InvalidTarget", str(exc), warn=True)
            return plan.interval

    async def _dispatch(self, step: Step) -> float | None:
        meta = step.obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._terminate(step)
        await self._sync_finalizer(step)
        if step.canary.suspended:
            step.log.debug("skipping suspended canary")
            return None
        self._clear_invalid(step)
        target_ref = step.canary.spec.target_ref
        kind = target_ref.kind or "Deployment"
        target = self._caches.get(workload_resource(kind), meta["namespace"], target_ref.name)
        if target is None:
            await self._halt(step, "TargetNotFound", f"{kind} {meta['namespace']}/{target_ref.name} not found",
                             warn=True)
            return step.plan.interval
        step.target = copy.deepcopy(target)
        step.target.setdefault("kind", kind)
        decision = manual.decide(step.obj)
        if decision is not None:
            return await self._manual(step, decision)
        handlers: dict[Phase | None, Callable[[Step], Awaitable[float | None]]] = {
            None: self._initialize,
            Phase.INITIALIZING: self._initialize,
            Phase.INITIALIZED: self._idle,
            Phase.SUCCEEDED: self._idle,
            Phase.FAILED: self._idle,
            Phase.WAITING: self._waiting,
            Phase.PROGRESSING: self._progressing,
            Phase.WAITING_PROMOTION: self._waiting_promotion,
            Phase.PROMOTING: self._promoting,
            Phase.FINALISING: self._finalising,
        }
        handler = handlers.get(step.phase)
        if handler is None:
            return None
        delay = await handler(step)
        if step.repair_route and not step.routed:
            # One route write per step at most: repairing first and then moving the weight would make the router
            # compare the second write against a cache that has not seen the first yet.
            await self._route(step)
        return delay

    # -- persistence and reporting -------------------------------------------------------------------------------

    async def _commit(self, step: Step) -> None:
        """Persist the working status when it differs from the cached one (invariant 5)."""
        if step.status == (step.obj.get("status") or {}):
            return
        generation = step.obj["metadata"].get("generation")
        if generation is not None:
            step.status["observedGeneration"] = generation
        body = {**step.obj, "status": step.status}
        written = await self._kube.resource(res.CANARIES).replace_status(body)
        self._written[step.key] = written["metadata"].get("resourceVersion", "")
        step.obj = written
        step.status = st.working_copy(written)
        if self._on_status is not None:
            try:
                self._on_status(step.canary, step.status)
            except Exception:  # telemetry must never fail a step that is already persisted
                step.log.exception("status observer failed")

    async def _event(self, step: Step, message: str, type_: str = NORMAL, reason: str = SYNCED) -> None:
        if type_ == NORMAL:
            step.log.info(message)
        else:
            step.log.warning(message)
        await self._events(step.obj, type_, reason, message)

    async def _notify(self, step: Step, message: str, severity: str) -> None:
        try:
            await self._notifier.notify(step.canary, message, severity, {
                "Target": f"{step.canary.spec.target_ref.kind or 'Deployment'}/{step.name}",
                "Phase": step.status.get("phase", ""),
            })
        except Exception:  # an alert channel being down must never stop a release
            step.log.exception("alert delivery failed")

    async def _halt(self, step: Step, reason: str, message: str, warn: bool = False,
                    subject: str | None = None) -> None:
        """Say why the canary waits; an Event only when the reason or message is new.

        ``subject`` is what is waited for in the Event's words (the canary by default, or its primary).
        """
        before = st.condition(step.status, st.HALTED)
        st.halt(step.status, reason, message, step.at)
        await self._commit(step)
        if before is None or (before.get("reason"), before.get("message")) != (reason, message):
            text = message if warn else f"Halt advancement {subject or step.name} {message}"
            await self._event(step, text, WARNING if warn else NORMAL, reason if warn else SYNCED)

    async def _invalid(self, key: str, obj: dict[str, Any], exc: SpecError, at: datetime) -> None:
        """A Canary that cannot be used: a Promoted=False/InvalidSpec condition and one Warning Event."""
        message = "; ".join(str(e) for e in exc.errors) or exc.kind
        status = st.working_copy(obj)
        st.set_condition(status, st.PROMOTED, "False", st.INVALID_SPEC, message, at)
        if status == (obj.get("status") or {}):
            return
        log.warning("invalid canary spec", canary=key, problems=message)
        written = await self._kube.resource(res.CANARIES).replace_status({**obj, "status": status})
        self._written[key] = written["metadata"].get("resourceVersion", "")
        await self._events(obj, WARNING, st.INVALID_SPEC, message)

    def _clear_invalid(self, step: Step) -> None:
        cond = st.condition(step.status, st.PROMOTED)
        if cond is not None and cond.get("reason") == st.INVALID_SPEC:
            phase = step.phase
            if phase is None:
                st.clear_condition(step.status, st.PROMOTED)
            else:
                st.set_phase(step.status, phase, step.at)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _router(self, step: Step) -> Router:
        return self._router_for(step.canary)

    async def _route(self, step: Step) -> None:
        """Make the route match the working status (created 100% primary; written only on difference)."""
        step.routed = True
        await self._router(step).reconcile(step.doc)

    async def _revision(self, step: Step) -> Revision:
        checksums: dict[str, str] = {}
        renames: dict[str, str] = {}
        if self.settings.config_tracking:
            checksums, renames = await self._apply.ensure_configs(step.obj, step.target)
        return Revision(wl.spec_hash(step.target["spec"]["template"]), checksums, renames)

    def _is_new(self, step: Step, rev: Revision) -> bool:
        if rev.spec != step.status.get("lastAppliedSpec"):
            return True
        return self.settings.config_tracking and rev.configs != (step.status.get("trackedConfigs") or {})

    def _primary(self, step: Step) -> dict[str, Any] | None:
        meta = step.target["metadata"]
        return self._caches.get(workload_resource(step.target["kind"]), meta["namespace"],
                                wl.primary_name(meta["name"]))

    async def _ensure_services(self, step: Step) -> None:
        key, value = wl.selector_label(step.target)
        desired = svc.build_services(step.canary, step.obj, key, value, step.target["spec"].get("template"))
        for name in await self._apply.ensure_services(desired):
            step.log.info("service reconciled", service=name)

    async def _ensure_primary(self, step: Step, rev: Revision) -> bool:
        hpa_managed = False
        ref = step.canary.spec.autoscaler_ref
        if ref is not None and (ref.kind or "HorizontalPodAutoscaler") == "HorizontalPodAutoscaler":
            limits = ref.primary_scaler_replicas
            replicas = (limits.min_replicas, limits.max_replicas) if limits else (None, None)
            hpa_managed = await self._apply.ensure_hpa(step.obj, step.canary.metadata.namespace, ref.name,
                                                       step.target["metadata"]["name"], replicas)
        if rev.renames:
            await self._apply.copy_configs(step.obj, step.canary.metadata.namespace, list(rev.renames))
        return await self._apply.ensure_primary(step.obj, step.target, rev.renames, hpa_managed)

    def _step_context(self, step: Step) -> StepContext:
        return StepContext(
            phase=step.status.get("phase", ""),
            checksum=step.status.get("lastAppliedSpec", ""),
            canary_weight=int(step.status.get("canaryWeight") or 0),
            iteration=int(step.status.get("iterations") or 0),
        )

    async def _hooks(self, step: Step, hook: HookType) -> list[WebhookResult]:
        return await self._analyzer.run_webhooks(step.canary, hook, self._step_context(step))

    async def _gate(self, step: Step, hook: HookType) -> WebhookResult | None:
        """The first failed gate webhook of ``hook``, or None when all said yes (or there are none)."""
        return next((r for r in await self._hooks(step, hook) if not r.passed), None)

    async def _rollback_requested(self, step: Step) -> bool:
        return any(r.passed for r in await self._hooks(step, HookType.ROLLBACK))

    def _active(self) -> list[str]:
        return [
            f"{c['metadata']['namespace']}/{c['metadata']['name']}"
            for c in self._caches.list(res.CANARIES)
            if st.phase_of(c.get("status") or {}) in ACTIVE
        ]

    def _record_metrics(self, step: Step, results: list[MetricResult]) -> None:
        history = list(step.status.get("metricHistory") or [])
        stamp = st.timestamp(step.at)
        for result in results:
            if result.skipped:
                continue
            history.append({
                "iteration": int(step.status.get("iterations") or 0),
                "weight": int(step.status.get("canaryWeight") or 0),
                "name": result.name,
                "value": result.value,
                "passed": result.passed,
                "time": stamp,
            })
        if history:
            step.status["metricHistory"] = history[-METRIC_HISTORY_LIMIT:]

    # -- phases --------------------------------------------------------------------------------------------------

    async def _initialize(self, step: Step) -> float | None:
        rev = await self._revision(step)
        await self._ensure_primary(step, rev)
        if step.phase is None:
            step.move(Phase.INITIALIZING)
            await self._commit(step)
            return self.settings.poll_interval
        primary = self._primary(step)
        if primary is None:
            return self.settings.poll_interval
        ready = wl.readiness(primary, step.plan.primary_ready_threshold)
        if not ready.ready:
            await self._halt(step, "PrimaryNotReady", ready.message, subject=step.primary)
            return self.settings.poll_interval
        await self._ensure_services(step)
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0, lastAppliedSpec=rev.spec,
                           lastPromotedSpec=rev.spec, trackedConfigs=rev.configs)
        step.move(Phase.INITIALIZED)
        st.unhalt(step.status)
        await self._route(step)
        await self._apply.scale(step.target, 0)
        await self._commit(step)
        await self._event(step, f"Initialization done! {step.name}")
        await self._notify(step, "Initialization done!", "info")
        return None

    async def _ensure_routing(self, step: Step) -> None:
        """Repair the Services now; the route is repaired once, after the step, from its final status."""
        await self._ensure_services(step)
        step.repair_route = True

    async def _idle(self, step: Step) -> float | None:
        await self._ensure_routing(step)
        rev = await self._revision(step)
        if not self._is_new(step, rev):
            await self._apply.scale(step.target, 0)
            self.slots.release(step.key)
            if st.condition(step.status, st.HALTED) is not None:
                st.unhalt(step.status)
                await self._commit(step)
            return None
        if self.slots.limit and not self.slots.may_start(step.key, self._active()):
            limit = self.slots.limit
            await self._halt(step, "MaxConcurrentCanaries",
                             f"waiting for a free analysis slot ({limit} canaries are being analysed)")
            return self.settings.poll_interval
        denied = await self._gate(step, HookType.CONFIRM_ROLLOUT)
        if denied is not None:
            step.move(Phase.WAITING)
            await self._commit(step)
            await self._event(step, f"Halt advancement {step.name} waiting for approval {denied.name}")
            return step.plan.interval
        return await self._start(step, rev)

    async def _manual(self, step: Step, decision: manual.Decision) -> float | None:
        """Act on a promote/abort/retry request once; its id is recorded in the status of the same step."""
        record_handled(step.status, decision.action, decision.request_id, decision.outcome, step.at)
        if not decision.applies:
            await self._commit(step)
            await self._event(step, decision.message, WARNING, "ManualRequestIgnored")
            return 0.0
        if decision.action is Action.ABORT:
            return await self._fail(step, decision.message)
        await self._event(step, decision.message)
        if decision.action is Action.PROMOTE:
            return await self._promote(step)
        return await self._start(step, await self._revision(step), retry=True)

    async def _start(self, step: Step, rev: Revision, restart: bool = False, retry: bool = False) -> float | None:
        primary = self._primary(step)
        await self._apply.scale(step.target, max(1, wl.replicas_of(primary) if primary else 1))
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0, lastAppliedSpec=rev.spec,
                           trackedConfigs=rev.configs)
        step.move(Phase.PROGRESSING)
        st.unhalt(step.status)
        self.slots.admit(step.key)
        await self._route(step)
        await self._commit(step)
        if restart:
            await self._event(step, f"New revision detected! Restarting analysis for {step.name}")
        elif not retry:
            await self._event(step, f"New revision detected! Scaling up {step.name}")
            await self._notify(step, "New revision detected, starting canary analysis.", "info")
        return self.settings.poll_interval

    async def _waiting(self, step: Step) -> float | None:
        await self._ensure_routing(step)
        remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                       step.at))
        if remaining > 0:
            return remaining
        denied = await self._gate(step, HookType.CONFIRM_ROLLOUT)
        if denied is not None:
            st.mark_step(step.status, step.at)
            await self._commit(step)
            return step.plan.interval
        return await self._start(step, await self._revision(step))

    async def _progressing(self, step: Step) -> float | None:
        await self._ensure_routing(step)
        rev = await self._revision(step)
        if self._is_new(step, rev):
            return await self._start(step, rev, restart=True)
        if step.plan.skip_analysis:
            await self._event(step, f"Skipping analysis for {step.name}")
            return await self._promote(step)
        if await self._rollback_requested(step):
            return await self._fail(step, f"Rolling back {step.name} manual webhook invoked")
        blocked, delay = await self._blocked(step)
        if blocked:
            return delay
        weight = int(step.status.get("canaryWeight") or 0)
        iterations = int(step.status.get("iterations") or 0)
        if not steps.analysis_started(step.plan, weight, iterations):
            failed = [r for r in await self._hooks(step, HookType.PRE_ROLLOUT) if not r.passed]
            if failed:
                return await self._failed_check(
                    step, [f"Halt advancement {step.name} pre-rollout check {r.name} failed {r.error or ''}".strip()
                           for r in failed])
            return await self._advance(step)
        since = st.seconds_since(step.status.get("lastTransitionTime"), step.at)
        remaining = steps.remaining_delay(step.plan, since)
        if remaining > 0:
            return remaining
        problems = await self._analyse(step)
        if problems:
            return await self._failed_check(step, problems)
        if steps.analysis_complete(step.plan, weight, iterations):
            return await self._to_promotion(step)
        return await self._advance(step)

    async def _blocked(self, step: Step) -> tuple[bool, float | None]:
        """Halt while the primary or canary is not ready or the route is not accepted; fail past the deadline.

        (True, next delay) when the step must stop here, (False, None) when the analysis may go on.
        """
        primary = self._primary(step)
        if primary is None:
            await self._halt(step, "PrimaryNotReady", "not found", subject=step.primary)
            return True, self.settings.poll_interval
        ready = wl.readiness(primary, step.plan.primary_ready_threshold)
        if not ready.ready:
            await self._halt(step, "PrimaryNotReady", ready.message, subject=step.primary)
            return True, self.settings.poll_interval
        ready = wl.readiness(step.target, step.plan.canary_ready_threshold)
        if not ready.ready:
            waited = st.seconds_since(step.status.get("lastTransitionTime"), step.at) or 0.0
            if ready.deadline_exceeded or waited > step.plan.progress_deadline:
                return True, await self._fail(
                    step, f"Rolling back {step.name} progress deadline exceeded {ready.message}")
            await self._halt(step, "CanaryNotReady", ready.message)
            return True, self.settings.poll_interval
        accepted, reason = await self._router(step).is_accepted(step.doc)
        if not accepted:
            await self._halt(step, "RouteNotAccepted", reason)
            return True, self.settings.poll_interval
        return False, None

    async def _analyse(self, step: Step) -> list[str]:
        """Run the metric checks and ``rollout`` webhooks of this step concurrently; the failures, in words."""
        context = self._step_context(step)
        metrics, hooks = await asyncio.gather(
            self._analyzer.check_metrics(step.canary, context),
            self._analyzer.run_webhooks(step.canary, HookType.ROLLOUT, context),
        )
        self._record_metrics(step, metrics)
        problems = []
        for m in metrics:
            if m.passed or m.skipped or m.dry_run:
                continue
            if m.error:
                problems.append(f"Halt advancement {step.name} metric {m.name} failed: {m.error}")
            else:
                bounds = f"[{'' if m.min is None else m.min}, {'' if m.max is None else m.max}]"
                problems.append(f"Halt {step.name} advancement {m.name} {m.value} outside {bounds}")
        for hook in hooks:
            if not hook.passed:
                detail = hook.error or (f"status {hook.status_code}" if hook.status_code else "")
                problems.append(f"Halt {step.name} advancement external check {hook.name} failed {detail}".strip())
        return problems

    async def _failed_check(self, step: Step, problems: list[str]) -> float | None:
        outcome = steps.on_failed_check(step.plan, int(step.status.get("failedChecks") or 0))
        step.status["failedChecks"] = outcome.failed_checks
        if outcome.rollback:
            for problem in problems:
                await self._event(step, problem)
            return await self._fail(
                step, f"Rolling back {step.name} failed checks threshold reached {outcome.failed_checks}"
            )
        st.mark_step(step.status, step.at)
        await self._commit(step)
        for problem in problems:
            await self._event(step, problem)
        return step.plan.interval

    async def _advance(self, step: Step) -> float | None:
        plan = step.plan
        weight = int(step.status.get("canaryWeight") or 0)
        if plan.strategy is steps.Strategy.CANARY:
            denied = await self._gate(step, HookType.CONFIRM_TRAFFIC_INCREASE)
            if denied is not None:
                st.mark_step(step.status, step.at)
                await self._halt(step, "WaitingTrafficIncrease", f"waiting for traffic increase approval "
                                                                 f"{denied.name}")
                return plan.interval
            new_weight = steps.next_weight(plan, weight)
            step.status["canaryWeight"] = new_weight
            message = f"Advance {step.name} canary weight {new_weight}"
        else:
            iterations = int(step.status.get("iterations") or 0) + 1
            step.status["iterations"] = iterations
            step.status["canaryWeight"] = steps.analysis_weight(plan, weight)
            message = f"Advance {step.name} canary iteration {iterations}/{plan.iterations}"
        st.mark_step(step.status, step.at)
        st.unhalt(step.status)
        await self._route(step)
        await self._commit(step)
        await self._event(step, message)
        return plan.interval

    async def _to_promotion(self, step: Step) -> float | None:
        denied = await self._gate(step, HookType.CONFIRM_PROMOTION)
        if denied is not None:
            if step.phase is not Phase.WAITING_PROMOTION:
                step.move(Phase.WAITING_PROMOTION)
            else:
                st.mark_step(step.status, step.at)
            await self._commit(step)
            await self._event(step, f"Halt advancement {step.name} waiting for promotion approval {denied.name}")
            return step.plan.interval
        return await self._promote(step)

    async def _promote(self, step: Step) -> float | None:
        if step.plan.strategy is steps.Strategy.BLUE_GREEN and not step.plan.skip_analysis:
            # The blue/green switch: everyone meets the new version while the primary rolls it out.
            step.status["canaryWeight"] = 100
            await self._event(step, f"Routing all traffic to canary {step.name}")
        step.move(Phase.PROMOTING)
        st.unhalt(step.status)
        await self._route(step)
        await self._commit(step)
        target = step.target["metadata"]["name"]
        namespace = step.target["metadata"]["namespace"]
        await self._event(step, f"Copying {target}.{namespace} template spec to {target}-primary.{namespace}")
        return 0.0

    async def _waiting_promotion(self, step: Step) -> float | None:
        await self._ensure_routing(step)
        rev = await self._revision(step)
        if self._is_new(step, rev):
            return await self._start(step, rev, restart=True)
        if await self._rollback_requested(step):
            return await self._fail(step, f"Rolling back {step.name} manual webhook invoked")
        remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                       step.at))
        if remaining > 0:
            return remaining
        return await self._to_promotion(step)

    async def _promoting(self, step: Step) -> float | None:
        await self._ensure_routing(step)
        rev = await self._revision(step)
        if self._is_new(step, rev):
            return await self._start(step, rev, restart=True)
        if await self._ensure_primary(step, rev):
            return self.settings.poll_interval
        primary = self._primary(step)
        ready = wl.readiness(primary, step.plan.primary_ready_threshold) if primary else None
        if ready is None or not ready.ready:
            await self._halt(step, "PrimaryNotReady", ready.message if ready else "not found",
                             subject=step.primary)
            return self.settings.poll_interval
        weight = int(step.status.get("canaryWeight") or 0)
        if step.plan.strategy is steps.Strategy.CANARY and step.plan.step_weight_promotion > 0 and weight > 0:
            remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                           step.at))
            if remaining > 0:
                return remaining
            weight = steps.promotion_weight(step.plan, weight)
            step.status["canaryWeight"] = weight
            st.mark_step(step.status, step.at)
            if weight > 0:
                st.unhalt(step.status)
                await self._route(step)
                await self._commit(step)
                await self._event(step, f"Advance {step.name} primary weight {100 - weight}")
                return step.plan.interval
        step.move(Phase.FINALISING)
        st.unhalt(step.status)
        await self._commit(step)
        return 0.0

    async def _finalising(self, step: Step) -> float | None:
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0,
                           lastPromotedSpec=step.status.get("lastAppliedSpec"))
        step.move(Phase.SUCCEEDED)
        st.unhalt(step.status)
        self.slots.release(step.key)
        await self._route(step)
        await self._apply.scale(step.target, 0)
        await self._commit(step)
        await self._event(step, f"Promotion completed! Scaling down {step.name}")
        await self._post_rollout(step)
        await self._notify(step, "Canary analysis completed successfully, promotion finished.", "info")
        return None

    async def _fail(self, step: Step, reason: str) -> float | None:
        step.status.update(canaryWeight=0, iterations=0)
        step.move(Phase.FAILED)
        st.unhalt(step.status)
        self.slots.release(step.key)
        await self._route(step)
        await self._apply.scale(step.target, 0)
        await self._commit(step)
        await self._event(step, reason, WARNING)
        await self._event(step, f"Canary failed! Scaling down {step.name}", WARNING)
        await self._post_rollout(step)
        await self._notify(step, reason, "error")
        return None

    async def _post_rollout(self, step: Step) -> None:
        for result in await self._hooks(step, HookType.POST_ROLLOUT):
            if not result.passed:
                await self._event(step, f"Post-rollout hook {result.name} failed {result.error or ''}".strip(),
                                  WARNING)

    # -- deletion ------------------------------------------------------------------------------------------------

    async def _patch_finalizers(self, step: Step, finalizers: list[str]) -> None:
        meta = step.obj["metadata"]
        written = await self._kube.resource(res.CANARIES).patch(
            meta["name"], meta["namespace"],
            {"metadata": {"finalizers": finalizers or None, "resourceVersion": meta.get("resourceVersion")}},
        )
        self._written[step.key] = written["metadata"].get("resourceVersion", "")
        step.obj = {**written, "status": step.obj.get("status") or {}}

    async def _sync_finalizer(self, step: Step) -> None:
        finalizers = list(step.obj["metadata"].get("finalizers") or [])
        wanted = bool(step.canary.spec.revert_on_deletion)
        if wanted and FINALIZER not in finalizers:
            await self._patch_finalizers(step, [*finalizers, FINALIZER])
        elif not wanted and FINALIZER in finalizers:
            await self._patch_finalizers(step, [f for f in finalizers if f != FINALIZER])

    async def _terminate(self, step: Step) -> float | None:
        """revertOnDeletion: give the target its traffic back, then let the Canary (and its primary) go."""
        finalizers = list(step.obj["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            return None
        meta = step.obj["metadata"]
        ref = step.canary.spec.target_ref
        kind = ref.kind or "Deployment"
        target = self._caches.get(workload_resource(kind), meta["namespace"], ref.name)
        # A canary that never got past initialisation has nothing to restore.
        if target is not None and step.phase not in (None, Phase.INITIALIZING):
            step.target = {**copy.deepcopy(target), "kind": kind}
            if step.phase is not Phase.TERMINATING:
                step.move(Phase.TERMINATING)
                await self._commit(step)
                await self._event(step, f"Terminating {step.name}: restoring the target")
            primary = self._primary(step)
            await self._apply.scale(step.target, max(1, wl.replicas_of(primary) if primary else 1))
            ready = wl.readiness(step.target, step.plan.canary_ready_threshold)
            if not ready.ready:
                await self._halt(step, "TargetNotReady", ready.message)
                return self.settings.poll_interval
            apex_name = step.canary.apex_name
            apex = self._caches.get(res.SERVICES, meta["namespace"], apex_name)
            if apex is not None:
                key, value = wl.selector_label(step.target)
                await self._apply.point_apex_at_target(apex, key, value)
            await self._router(step).finalize(step.doc)
        await self._patch_finalizers(step, [f for f in finalizers if f != FINALIZER])
        await self._events(step.obj, NORMAL, SYNCED, f"Terminated {step.name}: target restored")
        return None
