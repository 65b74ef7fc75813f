"""StepIO: what every phase handler needs around a step — persisting the status, Events, alerts, routing,
the primary and config copies, webhooks — with the engine's dependencies injected once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flaggerpy.analysis.base import Analyzer, HookType, MetricResult, Notifier, StepContext, WebhookResult
from flaggerpy.analysis.webhooks import hooks_of, status_checksum
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import METRIC_HISTORY_LIMIT
from flaggerpy.canary import messages, steps
from flaggerpy.canary import service as svc
from flaggerpy.canary import status as st
from flaggerpy.canary import workload as wl
from flaggerpy.canary.apply import Applier, workload_resource
from flaggerpy.canary.cache import Caches
from flaggerpy.canary.context import (
    FINALIZER,
    NORMAL,
    SYNCED,
    WARNING,
    EngineSettings,
    EventSink,
    Revision,
    RouterFor,
    StatusObserver,
    Step,
)
from flaggerpy.canary.memo import Memos
from flaggerpy.canary.offload import DeadlineExceeded, Offload
from flaggerpy.canary.parsed import ParsedCanaries
from flaggerpy.canary.phases import Phase
from flaggerpy.canary.slots import Slots
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import Conflict
from flaggerpy.kube.ownwrites import OwnWrites
from flaggerpy.log import get_logger
from flaggerpy.routing import affinity
from flaggerpy.routing.base import Router
from flaggerpy.routing.drift import intended_weights

# How much of a failed query's error a metricHistory sample keeps (``flaggerpy status`` shows it).
SAMPLE_ERROR_LIMIT = 200

log = get_logger(__name__)

# Hooks whose payload says Progressing whatever the phase (Flagger's scheduler passes CanaryPhaseProgressing to them,
# also in WaitingPromotion); the others carry the canary's phase.
_PROGRESSING_HOOKS = frozenset({HookType.PRE_ROLLOUT, HookType.ROLLOUT, HookType.CONFIRM_TRAFFIC_INCREASE,
                                HookType.CONFIRM_PROMOTION})


class StepIO:
    """The I/O side of a step, the collaborator of :class:`~flaggerpy.canary.reconciler.CanaryReconciler` (which
    decides): persisting the status, Events, alerts, routing, the primary and config copies, webhooks."""

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
        own_writes: OwnWrites | None = None,
        memos: Memos | None = None,
        wake: Callable[[str], None] | None = None,
        offload: Offload | None = None,
    ) -> None:
        self._kube = kube
        self.wake = wake
        """Asks for a reconcile of another canary now (the controller's ``enqueue``): a freed analysis slot wakes the
        waiter it lets in instead of leaving it to its next poll. Without it, waiters notice on their poll interval."""
        self.caches = caches
        self._router_for = router_for
        self.analyzer = analyzer
        self._notifier = notifier
        self.events = events
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.own_writes = own_writes if own_writes is not None else OwnWrites()
        """What this engine wrote (workloads, Services, configs, Canary statuses), shared with the routers."""
        self.apply = Applier(kube, caches, self.own_writes, self.settings.selector_labels,
                              self.settings.include_label_prefixes)
        self.slots = Slots(self.settings.max_concurrent_canaries)
        self.memos = memos if memos is not None else Memos()
        """Everything remembered about each canary between reconciles, dropped when it is deleted."""
        self.parsed = ParsedCanaries(self.memos)
        self._on_status = on_status
        self.offload = offload if offload is not None else Offload(
            deadline=self.settings.analysis_deadline, inline_wait=self.settings.analysis_inline_wait)
        """Each canary's lane for its outbound work (hooks, metric queries, alerts), shared with the Event sink;
        the end of work a step stopped waiting for wakes the canary."""
        if self.offload.wake is None:
            self.offload.wake = wake

    def plan(self, key: str) -> steps.Plan | None:
        """The plan of a canary as last reconciled (None before its first reconcile here)."""
        return self.parsed.plan(key)

    def forget(self, key: str) -> None:
        """Drop what is remembered about a canary that is gone."""
        namespace, _, name = key.partition("/")
        self.own_writes.forget_name(res.CANARIES, namespace, name)
        self.memos.drop(key)
        self.offload.forget(key)

    # -- persistence and reporting -------------------------------------------------------------------------------

    async def commit(self, step: Step) -> None:
        """Persist the working status when it differs from the cached one (invariant 5)."""
        cookies = affinity.status_cookies(step.doc)
        for key in ("sessionAffinityCookie", "primarySessionAffinityCookie", "previousSessionAffinityCookie"):
            if key in cookies:
                step.status[key] = cookies[key]
            else:
                step.status.pop(key, None)
        if step.status == (step.obj.get("status") or {}):
            return
        generation = step.obj["metadata"].get("generation")
        if generation is not None:
            step.status["observedGeneration"] = generation
        written = await self.replace_status(step)
        self.own_writes.remember(res.CANARIES, written)
        step.obj = written
        step.status = st.working_copy(written)
        if self._on_status is not None:
            try:
                self._on_status(step.canary, step.status)
            except Exception:  # telemetry must never fail a step that is already persisted
                step.log.exception("status observer failed")

    async def replace_status(self, step: Step) -> dict[str, Any]:
        """Write the step's status with resourceVersion concurrency.

        The step has already acted (route, scale) by now, so a Conflict caused only by a change outside the status
        (an annotation, a label, a spec edit) must not lose it: the status is re-applied on the latest object as
        long as nobody else changed the status this step started from. A different status means another writer
        moved the canary: the Conflict goes up and the step is decided again from the cache.
        """
        client = self._kube.resource(res.CANARIES)
        body = {**step.obj, "status": step.status}
        for _ in range(self.settings.status_write_attempts - 1):
            try:
                return await client.replace_status(body)
            except Conflict:
                meta = step.obj["metadata"]
                latest = await client.get(meta["name"], meta["namespace"])
                if (latest.get("status") or {}) != (step.obj.get("status") or {}):
                    raise
                body = {**latest, "status": step.status}
        return await client.replace_status(body)

    async def event(self, step: Step, message: str, type_: str = NORMAL, reason: str = SYNCED) -> None:
        if type_ == NORMAL:
            step.log.info(message)
        else:
            step.log.warning(message)
        # The working status: an Event's webhook payload carries the phase and checksum of the step that emitted it.
        await self.events(step.doc, type_, reason, message, step.working_canary())

    async def notify(self, step: Step, message: str, severity: str) -> None:
        """Send an alert from the canary's lane: a slow or hanging alert channel never holds the step."""
        canary = step.canary
        fields = {
            "Target": f"{canary.spec.target_ref.kind or 'Deployment'}/{step.name}",
            "Phase": step.status.get("phase", ""),
        }

        async def send() -> None:
            try:
                await self._notifier.notify(canary, message, severity, fields)
            except Exception:  # an alert channel being down must never stop a release
                step.log.exception("alert delivery failed")

        self.offload.spawn(step.key, send)

    async def halt(self, step: Step, reason: str, message: str, warn: bool = False,
                    text: str | None = None) -> None:
        """Say why the canary waits; an Event only when the reason or message is new.

        ``text`` is Flagger's own Warning for this wait (reason ``Synced``, as Flagger files it); without it the
        Event is flaggerpy's own, filed under ``reason``: a Warning when ``warn``, else a Normal "Halt advancement".
        """
        before = st.condition(step.status, st.HALTED)
        st.halt(step.status, reason, message, step.at)
        await self.commit(step)
        if before is not None and (before.get("reason"), before.get("message")) == (reason, message):
            return
        if text is not None:
            await self.event(step, text, WARNING)
        elif warn:
            await self.event(step, message, WARNING, reason)
        else:
            await self.event(step, f"Halt advancement {step.name} {message}", NORMAL, reason)

    async def invalid(self, key: str, obj: dict[str, Any], exc: SpecError, at: datetime) -> None:
        """A Canary that cannot be used: a Promoted=False/InvalidSpec condition and one Warning Event."""
        message = "; ".join(str(e) for e in exc.errors) or exc.kind
        status = st.working_copy(obj)
        st.set_condition(status, st.PROMOTED, "False", st.INVALID_SPEC, message, at)
        if status == (obj.get("status") or {}):
            return
        log.warning("invalid canary spec", canary=key, problems=message)
        written = await self._kube.resource(res.CANARIES).replace_status({**obj, "status": status})
        self.own_writes.remember(res.CANARIES, written)
        await self.events(obj, WARNING, st.INVALID_SPEC, message)

    async def report_ignored(self, step: Step) -> None:
        """One Warning Event per spec generation listing the fields ignored under Flagger's precedence.

        The release goes on with the fields that win; the ``IgnoredFields`` condition remembers what was reported.
        """
        message = "; ".join(str(w) for w in step.warnings)
        before = st.condition(step.status, st.IGNORED_FIELDS)
        report = st.note_ignored_fields(step.status, message, step.obj["metadata"].get("generation"), step.at)
        if report or (before is not None and not message):
            await self.commit(step)
        if report:
            await self.event(step, f"Ignored fields of {step.name}: {message}", WARNING, st.IGNORED_FIELDS)

    def clear_invalid(self, step: Step) -> None:
        cond = st.condition(step.status, st.PROMOTED)
        if cond is not None and cond.get("reason") == st.INVALID_SPEC:
            phase = step.phase
            if phase is None:
                st.clear_condition(step.status, st.PROMOTED)
            else:
                st.set_phase(step.status, phase, step.at, step.canary.spec.target_ref.kind or "Deployment")

    # -- helpers -------------------------------------------------------------------------------------------------

    def router(self, step: Step) -> Router:
        return self._router_for(step.canary)

    async def route(self, step: Step, fresh: bool = False) -> bool:
        """Make the route match the working status (created 100% primary; written only on difference); True when
        it was written.

        ``fresh`` is for the moments traffic leaves the canary before its pods go (invariant 2): the route is then
        written whatever the cache shows, since a cache that missed a write (by a replica that died, or during a
        relist) must not make the router skip the one write that must not be skipped.
        """
        step.routed = True
        return await self.router(step).reconcile(step.working_canary(), intended_weights(step.doc),
                                                  memo=self.memos.of(step.key).route, force=fresh)

    async def revision(self, step: Step) -> Revision:
        checksums: dict[str, str] = {}
        renames: dict[str, str] = {}
        if self.settings.config_tracking:
            checksums, renames = await self.apply.ensure_configs(step.target)
        return Revision(self.template_hash(step), checksums, renames)

    def template_hash(self, step: Step) -> str:
        """``spec_hash`` of the target's pod template, recomputed only when the template changed: comparing it
        with the last one seen is cheaper than serialising and hashing it on every reconcile."""
        template = step.target["spec"]["template"]
        memo = self.memos.of(step.key)
        seen = memo.template_hash
        if seen is not None and seen[0] == template:
            return seen[1]
        digest = wl.spec_hash(template)
        memo.template_hash = (template, digest)
        return digest

    def is_new(self, step: Step, rev: Revision) -> bool:
        if rev.spec != step.status.get("lastAppliedSpec"):
            return True
        return self.settings.config_tracking and rev.configs != (step.status.get("trackedConfigs") or {})

    def primary(self, step: Step) -> dict[str, Any] | None:
        meta = step.target["metadata"]
        return self.caches.get(workload_resource(step.target["kind"]), meta["namespace"],
                                wl.primary_name(meta["name"]))

    async def ensure_services(self, step: Step) -> None:
        """Create or repair the three Services; skipped while nothing they are built from or compared with
        changed since they were last found in order (the spec, the target's identity, the live Services)."""
        key, value = wl.selector_label(step.target, self.settings.selector_labels)
        spec = step.canary.spec
        template = step.target["spec"].get("template")
        names = svc.names(step.canary)
        namespace = step.canary.metadata.namespace
        live = tuple(
            (obj["metadata"].get("uid"), obj["metadata"].get("resourceVersion")) if obj is not None else None
            for obj in (self.caches.get(res.SERVICES, namespace, n) for n in (names.apex, names.primary, names.canary))
        )
        inputs = (step.obj["metadata"].get("uid"), key, value, template if spec.service.port_discovery else None,
                  live)
        memo = self.memos.of(step.key)
        seen = memo.services_in_order
        if seen is not None and seen[0] is spec and seen[1] == inputs:
            return
        desired = svc.build_services(step.canary, step.obj, key, value, template)
        written = await self.apply.ensure_services(desired)
        for name in written:
            step.log.info("service reconciled", service=name)
        if written:
            memo.services_in_order = None
        else:
            memo.services_in_order = (spec, inputs)

    async def ensure_primary(self, step: Step, rev: Revision) -> bool:
        """Bring the primary's autoscaler copy, config copies and workload in line; True when the workload was written.

        The autoscaler is checked first, so a reference that cannot work (an AutoscalerError, which the reconciler
        turns into a Halted condition and a Warning Event) stops the step before anything is written.
        """
        ref = step.canary.spec.autoscaler_ref
        if ref is not None:
            await self.apply.ensure_scaler(step.canary, ref, step.target)
        if rev.renames:
            await self.apply.copy_configs(step.canary, list(rev.renames))
        return await self.apply.ensure_primary(step.canary, self.memos.of(step.key), step.target, rev.renames,
                                                ref is not None,
                                                wl.revision_id(rev.spec, rev.configs))

    async def keep_primary_scaler(self, step: Step) -> None:
        """Create the primary's autoscaler copy where it is missing: an ``autoscalerRef`` added to a canary that is
        already initialised, or a copy deleted by hand, takes effect without waiting for the next release."""
        ref = step.canary.spec.autoscaler_ref
        if ref is not None:
            await self.apply.ensure_scaler(step.canary, ref, step.target, create_only=True)

    def step_context(self, step: Step, hook: HookType | None = None) -> StepContext:
        phase = step.status.get("phase", "")
        if hook in _PROGRESSING_HOOKS:
            phase = Phase.PROGRESSING.value
        return StepContext(
            phase=phase,
            checksum=status_checksum(step.status.get("trackedConfigs"), step.status.get("lastAppliedSpec")),
            canary_weight=int(step.status.get("canaryWeight") or 0),
            iteration=int(step.status.get("iterations") or 0),
        )

    @staticmethod
    def analysis_step(step: Step) -> tuple[Any, ...]:
        """What identifies the step whose outbound work is asked for: a result is reused only by the same step
        (same phase, weight, iteration, tick and revision), never by the next one."""
        status = step.status
        return (status.get("phase"), status.get("canaryWeight"), status.get("iterations"),
                status.get("failedChecks"), status.get("lastTransitionTime"), status.get("lastAppliedSpec"),
                status.get("trackedConfigs") and tuple(sorted(status["trackedConfigs"].items())),
                step.obj["metadata"].get("generation"), (step.target.get("metadata") or {}).get("generation"))

    async def offloaded(self, step: Step, what: Any, work: Callable[[], Any], outbound: bool) -> tuple[Any, bool]:
        """The outcome of ``work`` from the canary's lane, and whether this is its first use (see Offload).

        Without ``outbound`` (the canary has no hook or metric for it: nothing leaves the process) the work is
        awaited here, which costs no lane task, future and timer on every step of most canaries.
        """
        if not outbound:
            return await work(), True
        return await self.offload.result(step.key, self.analysis_step(step), what, work, ttl=step.plan.interval)

    async def hooks(self, step: Step, hook: HookType) -> tuple[list[WebhookResult], bool]:
        """The webhooks of ``hook`` for this step, called in the canary's lane; and whether the answers are new."""
        context = self.step_context(step, hook)
        results, first = await self.offloaded(
            step, hook, lambda: self.analyzer.run_webhooks(step.canary, hook, context),
            outbound=bool(hooks_of(step.canary, hook)))
        if isinstance(results, DeadlineExceeded):
            return [WebhookResult(str(hook), hook, False, error=str(results))], first
        return results, first

    async def gate(self, step: Step, hook: HookType) -> WebhookResult | None:
        """The first failed webhook of ``hook``, or None when all said yes (or there are none).

        Flagger calls the hooks one by one and stops at the first that says no, with a "check passed" Event for each
        yes before it: the same Events are emitted here (once per answer), although the hooks were called
        concurrently.
        """
        results, first = await self.hooks(step, hook)
        return await self.passed_events(step, hook, results, first)

    async def passed_events(self, step: Step, hook: HookType, results: list[WebhookResult],
                             emit: bool) -> WebhookResult | None:
        for result in results:
            if not result.passed:
                return result
            if emit:
                await self.event(step, messages.hook_passed(hook, result.name))
        return None

    async def rollback_requested(self, step: Step) -> bool:
        """Whether a ``rollback`` hook signals a rollback, with Flagger's Events for each hook asked."""
        results, first = await self.hooks(step, HookType.ROLLBACK)
        for result in results:
            if result.passed:
                await self.event(step, f"Rollback check {result.name} passed", WARNING)
                return True
            if first:
                await self.event(step, f"Rollback hook {result.name} not signaling a rollback")
        return False

    def record_metrics(self, step: Step, results: list[MetricResult]) -> None:
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
                # Bounded: status is read on every reconcile, and a backend's error text can be long.
                **({"error": result.error[:SAMPLE_ERROR_LIMIT]} if result.error else {}),
            })
        if history:
            step.status["metricHistory"] = history[-METRIC_HISTORY_LIMIT:]

    def record_hooks(self, step: Step, results: list[WebhookResult]) -> None:
        """Keep each ``rollout`` hook's result beside the metric values of the step (Flagger records a passing
        call nowhere; a failing one only in its Event), written with the step's status."""
        if not results:
            return
        stamp = st.timestamp(step.at)
        history = list(step.status.get("webhookHistory") or [])
        for result in results:
            history.append({
                "iteration": int(step.status.get("iterations") or 0),
                "weight": int(step.status.get("canaryWeight") or 0),
                "name": result.name,
                "passed": result.passed,
                **({"statusCode": result.status_code} if result.status_code is not None else {}),
                "time": stamp,
                **({"error": result.error[:SAMPLE_ERROR_LIMIT]} if result.error else {}),
            })
        step.status["webhookHistory"] = history[-METRIC_HISTORY_LIMIT:]

    # -- finalizer ---------------------------------------------------------------------------------------------

    async def patch_finalizers(self, step: Step, finalizers: list[str]) -> None:
        meta = step.obj["metadata"]
        written = await self._kube.resource(res.CANARIES).patch(
            meta["name"], meta["namespace"],
            {"metadata": {"finalizers": finalizers or None, "resourceVersion": meta.get("resourceVersion")}},
        )
        self.own_writes.remember(res.CANARIES, written)
        step.obj = {**written, "status": step.obj.get("status") or {}}

    async def sync_finalizer(self, step: Step) -> None:
        finalizers = list(step.obj["metadata"].get("finalizers") or [])
        wanted = bool(step.canary.spec.revert_on_deletion)
        if wanted and FINALIZER not in finalizers:
            await self.patch_finalizers(step, [*finalizers, FINALIZER])
        elif not wanted and FINALIZER in finalizers:
            await self.patch_finalizers(step, [f for f in finalizers if f != FINALIZER])
