"""The engine's Event sink: a Kubernetes Event through the kube layer's recorder, copied to ``event`` webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from flaggerpy.apis.flagger import Canary
from flaggerpy.canary.offload import Offload
from flaggerpy.kube.events import EventRecorder
from flaggerpy.log import get_logger

log = get_logger(__name__)


class EventHooks(Protocol):
    """What the engine needs of the webhook runner to forward Events (Flagger's ``event`` webhook type)."""

    def sends_events(self, canary: Canary) -> bool:
        """Whether :meth:`send_event` would call anything for ``canary``."""
        ...

    async def send_event(self, canary: Canary, type: str, message: str, phase: str | None = None) -> Any:
        """POST the Event to the canary's ``event`` hooks (or the controller-wide one); never raises."""
        ...


class EngineEvents:
    """Implements the reconciler's EventSink: record the Event, then forward it to the event webhooks.

    With ``lanes`` (the controller's :class:`~flaggerpy.canary.offload.Offload`) the forward goes out from the
    canary's lane, after the canary's hooks asked before it and without holding the step; without, it is awaited.
    """

    def __init__(self, recorder: EventRecorder, hooks: EventHooks | None = None, lanes: Offload | None = None) -> None:
        self._recorder = recorder
        self._hooks = hooks
        self._lanes = lanes

    async def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str,
                       canary: Canary | None = None) -> None:
        """Record one Event about ``obj`` (a Canary; ``canary`` is its parsed model, None when it is invalid);
        failures are logged, never raised."""
        body = dict(obj)
        await self._recorder.record(body, "Warning" if type_ == "Warning" else "Normal", reason, message)
        if self._hooks is None or canary is None or not self._hooks.sends_events(canary):
            # An invalid canary's webhooks cannot be trusted to be well-formed; the Event itself was recorded. With
            # no hook to forward to, no lane work either (two tasks per Event were 3-4% of the leader's CPU).
            return
        hooks, parsed = self._hooks, canary

        async def forward() -> None:
            try:
                await hooks.send_event(parsed, type_, message)
            except Exception:  # an event hook being down must not fail the step that produced the Event
                log.exception("event webhook failed", canary=parsed.key)

        if self._lanes is None:
            await forward()
        else:
            self._lanes.spawn(canary.key, forward)
