"""The controller's telemetry adapter: what the engine does, told to a ControllerObserver.

The controller wires informers, the queue and the workers; this module turns their events into the observer's
calls (Flagger's metric names and meanings), so the controller has no telemetry branches of its own. Without an
observer every method is a no-op, apart from passing persisted statuses on to an ``on_status`` hook.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from flaggerpy.apis.flagger import Canary, Strategy
from flaggerpy.canary import steps
from flaggerpy.canary.context import StatusObserver
from flaggerpy.canary.memo import Memos
from flaggerpy.canary.phases import Phase
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import Resource
from flaggerpy.kube.informer import NAMESPACE_INDEX, Informer
from flaggerpy.kube.reconcile import Result
from flaggerpy.routing.drift import intended_weights

RECONCILER_NAME = "canary"
# Phases in which a reconcile is a step of an analysis: Flagger observes flagger_canary_duration_seconds for those.
ANALYSIS_PHASES = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING})
OUTCOME_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class ControllerObserver(Protocol):
    """What the controller reports about itself and the releases it runs (``flaggerpy.telemetry.Recorder`` is one).

    Names are those Flagger's metrics use: ``target`` is the canary's ``spec.targetRef.name``.
    """

    def record_status(self, target: str, namespace: str, status: Mapping[str, Any]) -> None:
        """A status the engine persisted (phase, weights, metric values)."""

    def set_canary_total(self, namespace: str, count: int) -> None:
        """Canaries in ``namespace`` (from the informer cache)."""

    def observe_analysis(self, target: str, namespace: str, seconds: float) -> None:
        """Time one analysis step took."""

    def count_outcome(self, target: str, namespace: str, strategy: str, analysis: str, succeeded: bool) -> None:
        """A release ended: promoted (``succeeded``) or rolled back; ``analysis`` is completed or skipped."""

    def set_queue_depth(self, depth: int) -> None:
        """Keys waiting in the work queue."""

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        """One reconcile call: ``result`` is success, conflict or error."""

    def count_watch_reconnect(self, resource: str, reason: str) -> None:
        """A watch was re-opened after a failure (``reason``: dropped, gone or error)."""

    def forget_canary(self, target: str, namespace: str) -> None:
        """The canary of ``target`` was deleted: drop what is published about it."""


class Telemetry:
    """Reports the controller's work to ``observer`` (None: nothing is reported)."""

    def __init__(self, observer: ControllerObserver | None, memos: Memos,
                 on_status: StatusObserver | None = None) -> None:
        self._observer = observer
        self._memos = memos
        self._on_status = on_status

    @property
    def on_depth(self) -> Callable[[int], None] | None:
        """The work queue's depth hook, when there is an observer."""
        return self._observer.set_queue_depth if self._observer is not None else None

    @property
    def status_hook(self) -> StatusObserver | None:
        """What the reconciler calls with each status it persisted."""
        return self.status_written if self._observer is not None else self._on_status

    def watch(self, informer: Informer) -> None:
        """Count ``informer``'s watch reconnects."""
        if self._observer is not None:
            informer.observe_reconnects(self._observer.count_watch_reconnect)

    def wire(self, informers: Mapping[Resource, Informer]) -> None:
        """Count every informer's reconnects, publish the canaries per namespace, forget a deleted canary."""
        observer = self._observer
        if observer is None:
            return
        for informer in informers.values():
            informer.observe_reconnects(observer.count_watch_reconnect)
        store = informers[res.CANARIES].store

        def count(obj: Mapping[str, Any]) -> None:
            namespace = str((obj.get("metadata") or {}).get("namespace", ""))
            observer.set_canary_total(namespace, len(store.by_index(NAMESPACE_INDEX, namespace)))

        def forget(obj: Mapping[str, Any]) -> None:
            count(obj)
            target = ((obj.get("spec") or {}).get("targetRef") or {}).get("name")
            if target:
                observer.forget_canary(str(target), str((obj.get("metadata") or {}).get("namespace", "")))

        informers[res.CANARIES].add_handlers(count, None, forget)

    def status_written(self, canary: Canary, status: Mapping[str, Any]) -> None:
        """Pass the status on, publish it, and count a promotion or rollback the first time its phase is written."""
        if self._on_status is not None:
            self._on_status(canary, status)
        if self._observer is None:
            return
        published = status
        if canary.strategy is Strategy.AB:
            # Flagger's weight metrics show the A/B audience on the canary while status.canaryWeight stays 0.
            split = intended_weights({"spec": {"analysis": canary.analysis.to_dict()}, "status": status})
            published = {**status, "canaryWeight": split.canary}
        self._observer.record_status(canary.spec.target_ref.name, canary.metadata.namespace, published)
        key = f"{canary.metadata.namespace}/{canary.metadata.name}"
        phase = str(status.get("phase") or "")
        # The last phase seen, so a promotion or rollback is counted once however many statuses are written around it.
        memo = self._memos.of(key)
        previous = memo.phase if memo.phase is not None else (canary.status.phase if canary.status else None) or ""
        memo.phase = phase
        if phase == previous or phase not in OUTCOME_PHASES:
            return
        strategy = steps.plan_of(canary).strategy.value
        analysis = "skipped" if canary.skip_analysis and phase == Phase.SUCCEEDED else "completed"
        self._observer.count_outcome(canary.spec.target_ref.name, canary.metadata.namespace, strategy, analysis,
                                     phase == Phase.SUCCEEDED)

    async def timed(self, reconcile: Callable[[], Awaitable[Result]], cached: Mapping[str, Any] | None) -> Result:
        """Run one reconcile and report its duration and outcome; an analysis step's time also as Flagger's
        analysis duration (``cached``: the canary as the cache held it before the reconcile)."""
        if self._observer is None:
            return await reconcile()
        analysing = _analysis_target(cached)
        started = time.perf_counter()
        try:
            result = await reconcile()
        except Exception as exc:  # counted here as an error; the work queue's handle_result requeues it
            result = Result.failed(exc)
        seconds = time.perf_counter() - started
        self._observer.observe_reconcile(RECONCILER_NAME, result.label, seconds)
        if analysing is not None and result.succeeded:
            self._observer.observe_analysis(*analysing, seconds)
        return result


def _analysis_target(obj: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(target, namespace) when the canary is mid-analysis, so its reconcile is an analysis step."""
    if obj is None or Phase.parse((obj.get("status") or {}).get("phase")) not in ANALYSIS_PHASES:
        return None
    target = ((obj.get("spec") or {}).get("targetRef") or {}).get("name")
    namespace = str((obj.get("metadata") or {}).get("namespace", ""))
    return (str(target), namespace) if target else None
