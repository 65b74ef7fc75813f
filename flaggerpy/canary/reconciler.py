"""CanaryReconciler: advances one canary by at most one step of the state machine per call.

Everything is read from informer caches; each step is persisted in ``Canary.status`` (``/status`` with
resourceVersion concurrency) before the call returns, and the return value says when to look again — the time
between steps is a delayed re-add to the work queue, never a sleeping coroutine. Because all progress lives in the
status (including the time of the last step), any replica can pick a canary up where another left it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flaggerpy.analysis.base import HookType, MetricResult, WebhookResult
from flaggerpy.analysis.webhooks import hooks_of
from flaggerpy.apis.annotations import Action, record_handled
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Strategy
from flaggerpy.canary import manual, messages, steps
from flaggerpy.canary import status as st
from flaggerpy.canary import workload as wl
from flaggerpy.canary.apply import MissingConfig, workload_resource
from flaggerpy.canary.context import (
    FINALIZER,
    NORMAL,
    SYNCED,
    WARNING,
    EngineSettings,
    EventSink,
    Revision,
    StatusObserver,
    Step,
    is_gateway_canary,
)
from flaggerpy.canary.offload import DeadlineExceeded, Pending
from flaggerpy.canary.phases import Phase
from flaggerpy.canary.slots import WAIT_REASON
from flaggerpy.canary.stepio import StepIO
from flaggerpy.kube import resources as res
from flaggerpy.kube.errors import Conflict
from flaggerpy.kube.reconcile import Result
from flaggerpy.kube.watch import resource_version
from flaggerpy.log import get_logger
from flaggerpy.routing.errors import RouteNotOwned

log = get_logger(__name__)

ROUTE_NOT_ACCEPTED = "RouteNotAccepted"
"""The Halted reason of a canary waiting for its Gateway to accept the route."""
TRAFFIC_INCREASE_REFUSED = "WaitingTrafficIncrease"
"""The Halted reason of a canary whose confirm-traffic-increase gate said no."""

__all__ = [
    "ROUTE_NOT_ACCEPTED", "CanaryReconciler", "EngineSettings", "EventSink", "StatusObserver", "is_gateway_canary",
]


class CanaryReconciler:
    """The state machine of design.md, one step per :meth:`reconcile`: it decides, and ``io`` (a :class:`StepIO`)
    does everything a decision needs done around it (persisting, Events, routing, workloads, hooks)."""

    def __init__(self, io: StepIO) -> None:
        self.io = io

    # -- entry point ---------------------------------------------------------------------------------------------

    def handles(self, obj: Mapping[str, Any]) -> bool:
        """Whether this controller owns the canary (see :func:`is_gateway_canary`)."""
        return is_gateway_canary(obj, self.io.settings.mesh_provider)

    async def reconcile(self, key: str) -> Result:
        """Advance the canary ``namespace/name`` by at most one step; the Result says when to look again.

        A 409 on a write is a :meth:`Result.conflict` (the key backs off and the step is decided again from the
        cache); a step waiting for its canary's outbound work (:class:`Pending`) is done until that work wakes it;
        any other error raises (a step past ``step_deadline`` included), and the work queue requeues the key with
        its backoff.
        """
        try:
            async with asyncio.timeout(self.io.settings.step_deadline):
                delay = await self._step(key)
        except Conflict as exc:
            return Result.conflict(exc)
        except Pending:
            return Result.done()
        return Result.done() if delay is None else Result.requeue_after(delay)

    async def _step(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        obj = self.io.caches.get(res.CANARIES, namespace, name)
        if obj is None:
            self.io.forget(key)
            self.io.slots.release(key)
            self._wake_waiters()
            return None
        if self.io.own_writes.is_behind(res.CANARIES, obj):
            return self.io.settings.stale_cache_retry
        if not self.handles(obj):
            return None
        # ``obj`` is the informer's own copy and stays read-only: the step edits a copy of the status only.
        at = self.io.clock()
        try:
            parsed = self.io.parsed.parse(obj)
        except SpecError as exc:
            await self.io.invalid(key, obj, exc, at)
            return None
        step = Step(key, obj, parsed.canary, parsed.plan, st.working_copy(obj), at, log=log.bind(canary=key),
                    warnings=parsed.warnings)
        try:
            return await self._dispatch(step)
        except SpecError as exc:
            await self.io.invalid(key, step.obj, exc, at)
            return None
        except RouteNotOwned as exc:
            await self.io.halt(step, "RouteNotOwned", str(exc), warn=True)
            return step.plan.interval
        except MissingConfig as exc:
            await self.io.halt(step, "ConfigNotFound", str(exc), warn=True)
            return step.plan.interval
        except wl.WorkloadError as exc:
            await self.io.halt(step, exc.reason, str(exc), warn=True)
            return step.plan.interval

    async def _dispatch(self, step: Step) -> float | None:
        meta = step.obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._terminate(step)
        await self.io.sync_finalizer(step)
        memo = self.io.memos.of(step.key)
        if step.canary.suspended:
            # Flagger says so on every tick of a suspended canary; once per suspension is enough to be seen.
            if not memo.suspension_reported:
                memo.suspension_reported = True
                await self.io.event(step, "skipping canary run as object is suspended")
            return None
        memo.suspension_reported = False
        self.io.clear_invalid(step)
        await self.io.report_ignored(step)
        target_ref = step.canary.spec.target_ref
        kind = target_ref.kind or "Deployment"
        target = self.io.caches.get(workload_resource(kind), meta["namespace"], target_ref.name)
        if target is None:
            await self.io.halt(step, "TargetNotFound", f"{kind} {meta['namespace']}/{target_ref.name} not found",
                             warn=True)
            return step.plan.interval
        # A shallow copy: the target is read, never edited (builders copy what they take from it).
        step.target = {**target, "kind": target.get("kind") or kind}
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
            Phase.WAITING_PROMOTION: self._progressing,
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
            await self.io.route(step)
        return delay

    # -- phases --------------------------------------------------------------------------------------------------

    async def _initialize(self, step: Step) -> float | None:
        rev = await self.io.revision(step)
        await self.io.ensure_primary(step, rev)
        if step.phase is None:
            step.move(Phase.INITIALIZING)
            await self.io.commit(step)
            return self.io.settings.poll_interval
        primary = self.io.primary(step)
        if primary is None:
            return self.io.settings.poll_interval
        ready = wl.readiness(primary, step.plan.primary_ready_threshold)
        if not ready.ready:
            await self._primary_not_ready(step, ready.message)
            return self.io.settings.poll_interval
        await self.io.ensure_services(step)
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0, lastAppliedSpec=rev.spec,
                           lastPromotedSpec=rev.spec, trackedConfigs=rev.configs)
        step.move(Phase.INITIALIZED)
        st.unhalt(step.status)
        await self.io.route(step)
        await self.io.apply.scale(step.target, 0)
        await self.io.commit(step)
        await self.io.event(step, f"Initialization done! {step.canary_name}")
        await self.io.notify(step, f"New {step.target['kind']} detected, initialization completed.", "info")
        return None

    async def _repair_owned(self, step: Step) -> None:
        """Repair what the canary owns besides its workloads: the Services and the primary's autoscaler copy now, the
        route once, after the step, from its final status."""
        await self.io.ensure_services(step)
        await self.io.keep_primary_scaler(step)
        step.repair_route = True

    async def _idle(self, step: Step) -> float | None:
        await self._repair_owned(step)
        rev = await self.io.revision(step)
        if not self.io.is_new(step, rev):
            if wl.replicas_of(step.target) > 0:
                # Pods are about to go: the route must provably send them nothing first (invariant 2).
                await self.io.route(step, fresh=True)
                await self.io.apply.scale(step.target, 0)
            self.io.slots.release(step.key)
            halted = st.condition(step.status, st.HALTED)
            if halted is not None:
                st.unhalt(step.status)
                await self.io.commit(step)
                if halted.get("reason") == WAIT_REASON:
                    self._wake_waiters()
            return None
        if self.io.slots.limit and not await self._slot_free(step):
            return self.io.settings.poll_interval
        denied = await self.io.gate(step, HookType.CONFIRM_ROLLOUT)
        if denied is not None:
            # Past the slot check: the slot is held while approval is awaited (it starts without asking again).
            self.io.slots.admit(step.key)
            self._unwait(step)
            step.move(Phase.WAITING)
            await self.io.commit(step)
            await self.io.event(step, f"Halt {step.canary_name} advancement waiting for approval {denied.name}",
                                WARNING)
            if not denied.mute_alert:
                await self.io.notify(step, "Canary is waiting for approval.", "warn")
            return step.plan.interval
        return await self._start(step, rev)

    async def _slot_free(self, step: Step) -> bool:
        """Whether the new revision may start under ``--max-concurrent-canaries``; if not, it waits in line.

        The line is every cached waiter by (wait start, namespace/name): the wait start is the lastTransitionTime
        of the Halted condition, written once when the wait begins and kept while the message stays the same, so
        a restarted controller or a new leader admits in the same order.
        """
        census = self.io.slots.census(self.io.caches.list(res.CANARIES), self.handles)
        if self.io.slots.may_start(step.key, census, step.at):
            return True
        halted = st.condition(step.status, st.HALTED)
        if halted is not None and halted.get("reason") != WAIT_REASON:
            # The wait begins now, not when the canary began waiting for something else.
            st.unhalt(step.status)
        await self.io.halt(step, WAIT_REASON,
                         f"waiting for a free analysis slot ({self.io.slots.limit} canaries are being analysed)")
        self.io.slots.queued(step.key, step.status, resource_version(step.obj))
        return False

    @staticmethod
    def _unwait(step: Step) -> None:
        """The canary got its slot: it no longer waits for one."""
        halted = st.condition(step.status, st.HALTED)
        if halted is not None and halted.get("reason") == WAIT_REASON:
            st.unhalt(step.status)

    def _slot_freed(self, step: Step) -> None:
        """The status just written ends the canary's analysis: its slot goes to the next waiter."""
        self.io.slots.freed(step.key, resource_version(step.obj))
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Wake the waiters the free slots let in now (oldest first), if a waker is wired."""
        if self.io.wake is None or not self.io.slots.limit:
            return
        for key in self.io.slots.next_up(self.io.slots.census(self.io.caches.list(res.CANARIES), self.handles)):
            self.io.wake(key)

    async def _manual(self, step: Step, decision: manual.Decision) -> float | None:
        """Act on a promote/abort/retry request once; its id is recorded in the status of the same step."""
        record_handled(step.status, decision.action, decision.request_id, decision.outcome, step.at)
        if not decision.applies:
            await self.io.commit(step)
            await self.io.event(step, decision.message, WARNING, "ManualRequestIgnored")
            return 0.0
        if decision.action is Action.ABORT:
            return await self._fail(step, decision.message)
        await self.io.event(step, decision.message)
        if decision.action is Action.PROMOTE:
            return await self._promote(step)
        return await self._start(step, await self.io.revision(step), retry=True)

    async def _start(self, step: Step, rev: Revision, restart: bool = False, retry: bool = False) -> float | None:
        primary = self.io.primary(step)
        await self.io.apply.scale(step.target, max(1, wl.replicas_of(primary) if primary else 1))
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0, lastAppliedSpec=rev.spec,
                           trackedConfigs=rev.configs)
        step.move(Phase.PROGRESSING)
        st.unhalt(step.status)
        self.io.slots.admit(step.key)
        await self.io.route(step, fresh=restart)
        await self.io.commit(step)
        if restart:
            await self.io.event(step, f"New revision detected! Restarting analysis for {step.name}")
        elif not retry:
            await self.io.event(step, f"New revision detected! Scaling up {step.name}")
            await self.io.notify(step, "New revision detected, starting canary analysis.", "info")
        return self.io.settings.poll_interval

    async def _waiting(self, step: Step) -> float | None:
        await self._repair_owned(step)
        remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                       step.at))
        if remaining > 0:
            return remaining
        denied = await self.io.gate(step, HookType.CONFIRM_ROLLOUT)
        if denied is not None:
            st.mark_step(step.status, step.at)
            await self.io.commit(step)
            return step.plan.interval
        return await self._start(step, await self.io.revision(step))

    async def _progressing(self, step: Step) -> float | None:
        """One analysis tick of Progressing or WaitingPromotion, in the order of Flagger's ``advanceCanary``:
        revision check, readiness, rollback hooks, failed-checks threshold, then the analysis and the next step."""
        await self._repair_owned(step)
        rev = await self.io.revision(step)
        if self.io.is_new(step, rev):
            return await self._start(step, rev, restart=True)
        if step.plan.skip_analysis:
            return await self._promote(step)
        blocked, delay = await self._blocked(step)
        if blocked:
            return delay
        if await self.io.route(step):
            # The route lacked the step the status holds (its write failed after the status was persisted, or
            # someone edited it): the analysis of this step starts now that the traffic really is there, so a
            # check never judges, and never advances past, a weight the route did not carry.
            st.mark_step(step.status, step.at)
            await self.io.commit(step)
            return step.plan.interval
        weight = int(step.status.get("canaryWeight") or 0)
        iterations = int(step.status.get("iterations") or 0)
        failed_checks = int(step.status.get("failedChecks") or 0)
        started = steps.analysis_started(step.plan, weight, iterations)
        halted = st.condition(step.status, st.HALTED)
        refused = halted is not None and halted.get("reason") == TRAFFIC_INCREASE_REFUSED
        if started or failed_checks or refused:
            # Before traffic flows the first tick runs as soon as the canary is ready; a retry after a failed
            # pre-rollout hook or a refused first weight, like every analysis tick, waits its interval.
            remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                           step.at))
            if remaining > 0:
                return remaining
        if await self._route_pending(step):
            return self.io.settings.poll_interval
        if await self.io.rollback_requested(step):
            return await self._fail(step, f"Rolling back {step.canary_name} manual webhook invoked",
                                    alert=("Rolling back manual webhook invoked", "warn"))
        if failed_checks >= step.plan.threshold:
            # Flagger rolls back on the tick after the check that reached the threshold.
            return await self._fail(step, f"Rolling back {step.canary_name} failed checks threshold reached "
                                          f"{failed_checks}",
                                    alert=(f"Failed checks threshold reached {failed_checks}", "error"))
        if not started:
            await self.io.event(step, f"Starting canary analysis for {step.name}")
            if not await self._pre_rollout(step):
                return await self._failed_check(step)
            return await self._next(step)
        if not await self._analyse(step):
            return await self._failed_check(step)
        return await self._next(step)

    async def _next(self, step: Step) -> float | None:
        """After a passed tick, the strategy's next move (Flagger's ``runCanary``/``runAB``/``runBlueGreen``)."""
        plan = step.plan
        weight = int(step.status.get("canaryWeight") or 0)
        iterations = int(step.status.get("iterations") or 0)
        if plan.strategy is Strategy.CANARY and step.phase is Phase.PROGRESSING:
            # Asked at every tick of the analysis, also at maxWeight, but no more once promotion was refused.
            denied = await self.io.gate(step, HookType.CONFIRM_TRAFFIC_INCREASE)
            if denied is not None:
                return await self._traffic_increase_denied(step, denied)
        if not steps.analysis_complete(plan, weight, iterations):
            return await self._advance(step)
        if plan.strategy is Strategy.BLUE_GREEN and iterations == plan.iterations:
            return await self._to_promotion(step, self._switch)
        return await self._to_promotion(step, self._promote)

    async def _traffic_increase_denied(self, step: Step, denied: WebhookResult) -> float | None:
        st.mark_step(step.status, step.at)
        # The Halted condition (a flaggerpy extension) says why the weight holds; Flagger's Warning repeats per tick.
        st.halt(step.status, TRAFFIC_INCREASE_REFUSED, f"waiting for traffic increase approval {denied.name}",
                step.at)
        await self.io.commit(step)
        await self.io.event(step, f"Halt {step.canary_name} advancement waiting for traffic increase approval "
                                f"{denied.name}", WARNING)
        if not denied.mute_alert:
            await self.io.notify(step, "Canary traffic increase is waiting for approval.", "warn")
        return step.plan.interval

    async def _pre_rollout(self, step: Step) -> bool:
        """Flagger's ``runPreRolloutHooks``: a passed Event per hook up to the first failure, which is a Warning."""
        failed = await self.io.gate(step, HookType.PRE_ROLLOUT)
        if failed is None:
            return True
        await self.io.event(step, f"Halt {step.canary_name} advancement pre-rollout check {failed.name} failed "
                                f"{_hook_error(failed)}".rstrip(), WARNING)
        return False

    async def _primary_not_ready(self, step: Step, message: str) -> None:
        # Flagger's IsPrimaryReady words, as a Warning; the Halted condition says the same.
        await self.io.halt(step, "PrimaryNotReady", message, text=f"{step.primary} not ready: {message}")

    async def _route_pending(self, step: Step) -> bool:
        """Halt (True) while a Gateway has not accepted the route's current generation.

        Asked only when the analysis is about to act (a check or the first weight): between steps a route this
        controller has just written is always a generation behind for a moment, and saying so would cost a status
        write and an Event per step for nothing.
        """
        router = self.io.router(step)
        accepted, reason = await router.is_accepted(step.working_canary(), memo=self.io.memos.of(step.key).route)
        if accepted:
            return False
        await self.io.halt(step, ROUTE_NOT_ACCEPTED, reason)
        return True

    async def _blocked(self, step: Step) -> tuple[bool, float | None]:
        """Halt while the primary or canary is not ready; fail past the deadline.

        (True, next delay) when the step must stop here, (False, None) when the analysis may go on.
        """
        primary = self.io.primary(step)
        if primary is None:
            await self._primary_not_ready(step, "not found")
            return True, self.io.settings.poll_interval
        ready = wl.readiness(primary, step.plan.primary_ready_threshold)
        if not ready.ready:
            await self._primary_not_ready(step, ready.message)
            return True, self.io.settings.poll_interval
        if wl.replicas_of(step.target) == 0:
            # Someone (or a crash between our writes) left the canary without pods: bring them back first.
            await self.io.apply.scale(step.target, max(1, wl.replicas_of(primary)))
        ready = wl.readiness(step.target, step.plan.canary_ready_threshold)
        if not ready.ready:
            waited = st.seconds_since(step.status.get("lastTransitionTime"), step.at) or 0.0
            if ready.deadline_exceeded or waited > step.plan.progress_deadline:
                return True, await self._fail(
                    step, f"Rolling back {step.canary_name} progress deadline exceeded {ready.message}",
                    alert=(f"Progress deadline exceeded {ready.message}", "error"))
            # No route repair towards pods that are not ready (invariant 2): the weight comes back once they are.
            step.repair_route = False
            kind = str(step.target.get("kind") or "Deployment").lower()
            await self.io.halt(step, "CanaryNotReady", ready.message,
                             text=f"canary {kind} {step.name} not ready: {ready.message}")
            return True, self.io.settings.poll_interval
        return False, None

    async def _analyse(self, step: Step) -> bool:
        """Run the ``rollout`` webhooks and metric checks of this tick concurrently; False when the tick fails.

        Flagger calls them one by one (webhooks first) and stops at the first failure, with one Warning: the same
        Warning is emitted here, for the first failure in Flagger's order, although all of them ran.
        """
        context = self.io.step_context(step, HookType.ROLLOUT)

        async def tick() -> tuple[list[MetricResult], list[WebhookResult]]:
            metrics, hooks = await asyncio.gather(
                self.io.analyzer.check_metrics(step.canary, context),
                self.io.analyzer.run_webhooks(step.canary, HookType.ROLLOUT, context),
            )
            return metrics, hooks

        outbound = bool(step.canary.analysis.metrics or hooks_of(step.canary, HookType.ROLLOUT))
        outcome, first = await self.io.offloaded(step, "analysis", tick, outbound)
        if isinstance(outcome, DeadlineExceeded):
            if first:
                await self.io.event(step, f"Halt {step.canary_name} advancement analysis {outcome}", WARNING)
            return False
        metrics, hooks = outcome
        self.io.record_metrics(step, metrics)
        self.io.record_hooks(step, hooks)
        for hook in hooks:
            if not hook.passed:
                await self.io.event(step, f"Halt {step.canary_name} advancement external check {hook.name} failed "
                                        f"{_hook_error(hook)}".rstrip(), WARNING)
                return False
        builtin = {m.name for m in step.canary.analysis.metrics or () if m.is_builtin}
        provider = step.canary.spec.provider or self.io.settings.mesh_provider
        for metric in metrics:
            if metric.passed or metric.skipped or metric.dry_run:
                continue
            message = messages.metric_halt(step.canary_name, step.name, provider, metric, metric.name in builtin)
            await self.io.event(step, message, WARNING)
            return False
        return True

    async def _failed_check(self, step: Step) -> float | None:
        """Count a failed tick; the rollback comes on the next tick if the threshold is reached (as in Flagger)."""
        step.status["failedChecks"] = int(step.status.get("failedChecks") or 0) + 1
        st.mark_step(step.status, step.at)
        await self.io.commit(step)
        return step.plan.interval

    async def _advance(self, step: Step) -> float | None:
        plan = step.plan
        weight = int(step.status.get("canaryWeight") or 0)
        if plan.strategy is Strategy.CANARY:
            new_weight = steps.next_weight(plan, weight)
            step.status["canaryWeight"] = new_weight
            message = f"Advance {step.canary_name} canary weight {new_weight}"
        else:
            iterations = int(step.status.get("iterations") or 0) + 1
            step.status["iterations"] = iterations
            step.status["canaryWeight"] = steps.analysis_weight(plan, weight)
            message = f"Advance {step.canary_name} canary iteration {iterations}/{plan.iterations}"
        st.mark_step(step.status, step.at)
        st.unhalt(step.status)
        # Status first: if the route write then fails, the next reconcile repairs the route from the status, so
        # traffic never goes back a step (route first, a failed status write would undo a weight already live).
        await self.io.commit(step)
        await self.io.route(step)
        await self.io.event(step, message)
        return plan.interval

    async def _to_promotion(self, step: Step, then: Callable[[Step], Awaitable[float | None]]) -> float | None:
        """Flagger's ``runConfirmPromotionHooks`` before ``then`` (the blue/green switch or the promotion)."""
        denied = await self.io.gate(step, HookType.CONFIRM_PROMOTION)
        if denied is None:
            return await then(step)
        if step.phase is not Phase.WAITING_PROMOTION:
            step.move(Phase.WAITING_PROMOTION)
            await self.io.commit(step)
            await self.io.event(step, f"Halt {step.canary_name} advancement waiting for promotion approval "
                                    f"{denied.name}", WARNING)
            if not denied.mute_alert:
                await self.io.notify(step, "Canary promotion is waiting for approval.", "warn")
        else:
            st.mark_step(step.status, step.at)
            await self.io.commit(step)
        return step.plan.interval

    async def _switch(self, step: Step) -> float | None:
        """The blue/green switch: everyone meets the new version, and the analysis runs once more at 100% (the
        extra iteration) before the primary is touched; that tick can still roll back."""
        step.status["canaryWeight"] = 100
        step.status["iterations"] = step.plan.iterations + 1
        st.mark_step(step.status, step.at)
        st.unhalt(step.status)
        await self.io.commit(step)
        await self.io.route(step)
        if step.plan.mirror:
            await self.io.event(step, "Stop traffic mirroring and route all traffic to canary")
        else:
            await self.io.event(step, "Routing all traffic to canary")
        return step.plan.interval

    async def _promote(self, step: Step) -> float | None:
        target = step.target["metadata"]["name"]
        namespace = step.target["metadata"]["namespace"]
        await self.io.event(step, f"Copying {target}.{namespace} template spec to {target}-primary.{namespace}")
        step.move(Phase.PROMOTING)
        st.unhalt(step.status)
        await self.io.commit(step)
        await self.io.route(step)
        return 0.0

    async def _promoting(self, step: Step) -> float | None:
        await self._repair_owned(step)
        rev = await self.io.revision(step)
        if self.io.is_new(step, rev):
            return await self._start(step, rev, restart=True)
        if await self.io.ensure_primary(step, rev):
            return self.io.settings.poll_interval
        primary = self.io.primary(step)
        ready = wl.readiness(primary, step.plan.primary_ready_threshold) if primary else None
        if ready is None or not ready.ready:
            await self._primary_not_ready(step, ready.message if ready else "not found")
            return self.io.settings.poll_interval
        weight = int(step.status.get("canaryWeight") or 0)
        if step.plan.strategy is Strategy.CANARY and step.plan.step_weight_promotion > 0 and weight > 0:
            # Flagger's runPromotionTrafficShift with stepWeightPromotion: back to the primary step by step.
            remaining = steps.remaining_delay(step.plan, st.seconds_since(step.status.get("lastTransitionTime"),
                                                                           step.at))
            if remaining > 0:
                return remaining
            weight = steps.promotion_weight(step.plan, weight)
            step.status["canaryWeight"] = weight
            st.mark_step(step.status, step.at)
            st.unhalt(step.status)
            if weight > 0:
                await self.io.commit(step)
                await self.io.route(step)
                await self.io.event(step, f"Advance {step.canary_name} primary weight {100 - weight}")
                return step.plan.interval
            await self._finalise(step)
            await self.io.event(step, f"Advance {step.canary_name} primary weight 100")
            return 0.0
        if not step.plan.skip_analysis:
            # A skipped analysis never moved traffic: Flagger has nothing to route back then.
            await self.io.event(step, "Routing all traffic to primary")
        await self._finalise(step)
        return 0.0

    async def _finalise(self, step: Step) -> None:
        """All traffic back to the primary, now running the new revision; Finalising scales the canary down."""
        step.status.update(canaryWeight=0, iterations=0)
        step.move(Phase.FINALISING)
        st.unhalt(step.status)
        await self.io.commit(step)
        await self.io.route(step, fresh=True)

    async def _finalising(self, step: Step) -> float | None:
        # The route again (from the cache, a write only if the last one was lost): pods go only once it is primary's.
        await self.io.route(step)
        step.status.update(canaryWeight=0, failedChecks=0, iterations=0,
                           lastPromotedSpec=step.status.get("lastAppliedSpec"))
        step.move(Phase.SUCCEEDED)
        st.unhalt(step.status)
        self.io.slots.release(step.key)
        await self.io.apply.scale(step.target, 0)
        await self.io.commit(step)
        self._slot_freed(step)

        async def tail() -> None:
            # Flagger runs post-rollout hooks before it says the promotion is complete.
            await self._post_rollout(step)
            if step.plan.skip_analysis:
                await self.io.event(step, f"Promotion completed! Canary analysis was skipped for {step.name}")
                await self.io.notify(step, "Canary analysis was skipped, promotion finished.", "info")
            else:
                await self.io.event(step, f"Promotion completed! Scaling down {step.name}")
                await self.io.notify(step, "Canary analysis completed successfully, promotion finished.", "info")

        # The step is persisted: what follows it goes out from the canary's lane, in order, without a worker.
        self.io.offload.spawn(step.key, tail)
        return None

    async def _fail(self, step: Step, reason: str, alert: tuple[str, str] | None = None) -> float | None:
        """Flagger's ``rollback``: the reason, traffic to the primary, the canary scaled down, post-rollout hooks.

        ``alert`` is the (message, severity) Flagger sends for this reason; the reason itself by default. Failed
        resets failedChecks as Flagger's SyncStatus does.
        """
        await self.io.event(step, reason, WARNING)
        message, severity = alert or (reason, "error")
        await self.io.notify(step, message, severity)
        step.status.update(canaryWeight=0, iterations=0, failedChecks=0)
        step.move(Phase.FAILED)
        st.unhalt(step.status)
        self.io.slots.release(step.key)
        await self.io.route(step, fresh=True)
        await self.io.event(step, f"Canary failed! Scaling down {step.canary_name}", WARNING)
        await self.io.apply.scale(step.target, 0)
        await self.io.commit(step)
        self._slot_freed(step)
        self.io.offload.spawn(step.key, lambda: self._post_rollout(step))
        return None

    async def _post_rollout(self, step: Step) -> None:
        """Flagger's ``runPostRolloutHooks``, run from the canary's lane after the step is persisted (so it calls
        the analyzer itself: asking the lane for a result from inside the lane would wait for itself)."""
        hook = HookType.POST_ROLLOUT
        results = await self.io.analyzer.run_webhooks(step.canary, hook, self.io.step_context(step, hook))
        failed = await self.io.passed_events(step, hook, results, emit=True)
        if failed is not None:
            await self.io.event(step, f"Post-rollout hook {failed.name} failed {_hook_error(failed)}".rstrip(), WARNING)

    # -- deletion ------------------------------------------------------------------------------------------------

    async def _terminate(self, step: Step) -> float | None:
        """revertOnDeletion: give the target its traffic back, then let the Canary (and its primary) go."""
        finalizers = list(step.obj["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            return None
        meta = step.obj["metadata"]
        ref = step.canary.spec.target_ref
        kind = ref.kind or "Deployment"
        target = self.io.caches.get(workload_resource(kind), meta["namespace"], ref.name)
        # A canary that never got past initialisation has nothing to restore.
        if target is not None and step.phase not in (None, Phase.INITIALIZING):
            step.target = {**target, "kind": kind}
            if step.phase is not Phase.TERMINATING:
                step.move(Phase.TERMINATING)
                await self.io.commit(step)
                await self.io.event(step, f"Terminating canary {step.canary_name}")
            primary = self.io.primary(step)
            await self.io.apply.scale(step.target, max(1, wl.replicas_of(primary) if primary else 1))
            ready = wl.readiness(step.target, step.plan.canary_ready_threshold)
            if not ready.ready:
                await self.io.halt(step, "TargetNotReady", ready.message)
                return self.io.settings.poll_interval
            apex_name = step.canary.apex_name
            apex = self.io.caches.get(res.SERVICES, meta["namespace"], apex_name)
            if apex is not None:
                key, value = wl.selector_label(step.target, self.io.settings.selector_labels)
                await self.io.apply.point_apex_at_target(apex, key, value)
            await self.io.router(step).finalize(step.working_canary(), memo=self.io.memos.of(step.key).route)
        await self.io.patch_finalizers(step, [f for f in finalizers if f != FINALIZER])
        await self.io.events(step.obj, NORMAL, SYNCED, f"Terminated canary {step.canary_name}", step.canary)
        return None


def _hook_error(result: WebhookResult) -> str:
    """What went wrong with a hook, in the place of Flagger's ``%v`` of the call's error."""
    return result.error or (f"status {result.status_code}" if result.status_code else "")
