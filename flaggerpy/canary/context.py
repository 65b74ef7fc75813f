"""What one reconcile works with: engine settings, the injected sinks, and the Step being taken."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from flaggerpy.apis.errors import FieldError
from flaggerpy.apis.flagger import GATEWAY_PROVIDERS, Canary, CanaryStatus
from flaggerpy.canary import status as st
from flaggerpy.canary import steps
from flaggerpy.canary import workload as wl
from flaggerpy.canary.phases import Phase, check
from flaggerpy.kube import jsonio
from flaggerpy.log import get_logger
from flaggerpy.routing.base import Router

FINALIZER = "finalizer.flagger.app"

# Flagger files every progress message under this one reason; users grep for it.
SYNCED = "Synced"
NORMAL, WARNING = "Normal", "Warning"


class EventSink(Protocol):
    """Records a Kubernetes Event about an object (implemented over the kube layer's EventRecorder)."""

    async def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str,
                       canary: Canary | None = None) -> None:
        """Record ``message`` (never raises); ``canary`` is ``obj`` parsed, None when it is invalid."""
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
    selector_labels: tuple[str, ...] = wl.SELECTOR_LABELS
    """Labels that identify the target's pods, tried in order (Flagger's ``-selector-labels``)."""
    include_label_prefixes: tuple[str, ...] = ()
    """Prefixes of the target's labels and annotations copied to the primary workload; ``*`` copies all, none by
    default, as Flagger's ``-include-label-prefix``."""
    poll_interval: float = 1.0
    """Re-check delay while waiting for something (readiness, acceptance) in case no watch event arrives."""
    stale_cache_retry: float = 0.05
    """Delay before retrying when the cache has not yet caught up with our own last status write."""
    status_write_attempts: int = 3
    """Writes of one step's status when Conflicts come only from changes outside the status (see StepIO)."""
    step_deadline: float = 120.0
    """Seconds one reconcile (the API reads and writes of one step) may take before it is cancelled and retried
    with the canary's backoff."""
    analysis_deadline: float = 310.0
    """Seconds one piece of a canary's outbound work (a hook type's webhooks, the metric checks, an alert) may take
    in the canary's own lane; past it the hooks count as failed. ``flaggerpy run`` derives it from
    ``--webhook-max-duration``."""
    analysis_inline_wait: float = 0.05
    """Seconds a worker waits for a canary's outbound work before it lets the work go on alone and moves to other
    canaries (the canary is woken when the work ends): fast hooks and queries cost no extra reconcile."""


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
    warnings: tuple[FieldError, ...] = ()
    """Fields of the spec Flagger ignores beside others (reported once per generation)."""
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: get_logger(__name__))
    routed: bool = False
    """The route was reconciled in this step."""
    repair_route: bool = False
    """The route must match the status when the step ends (drift repair)."""
    _working: tuple[bytes, Canary] | None = field(default=None, init=False, repr=False, compare=False)
    """(the status as JSON bytes, the typed Canary carrying it) as :meth:`working_canary` last built it."""

    def __post_init__(self) -> None:
        # A step starts from the status ``canary`` was parsed with (``status`` is a copy of the same JSON).
        self._working = (jsonio.dumps(self.status), self.canary)

    @property
    def name(self) -> str:
        """Flagger's ``name.namespace`` spelling in messages."""
        return f"{self.canary.spec.target_ref.name}.{self.canary.metadata.namespace}"

    @property
    def canary_name(self) -> str:
        """The Canary's own ``name.namespace``, which most of Flagger's messages use (``name`` is the target's)."""
        return f"{self.canary.metadata.name}.{self.canary.metadata.namespace}"

    @property
    def primary(self) -> str:
        """The primary workload in Flagger's ``name-primary.namespace`` spelling."""
        return f"{wl.primary_name(self.canary.spec.target_ref.name)}.{self.canary.metadata.namespace}"

    @property
    def doc(self) -> dict[str, Any]:
        """The canary as JSON with the status this step is about to persist."""
        return {**self.obj, "status": self.status}

    def working_canary(self) -> Canary:
        """The typed Canary with the status this step is about to persist (the router routes from it: session-
        affinity cookies follow its revision and phase; Event webhooks report its phase). Shared by the calls
        that see the same status: read it, never edit it.

        Built again only when the status changed since the last call: a reconcile asks for it for the route, each
        Event and the acceptance check, mostly with the status it started from.
        """
        key = jsonio.dumps(self.status)
        if self._working is None or self._working[0] != key:
            self._working = (key, self.canary.model_copy(update={"status": CanaryStatus.model_validate(self.status)}))
        return self._working[1]

    @property
    def phase(self) -> Phase | None:
        """The phase in the working status."""
        return st.phase_of(self.status)

    def move(self, phase: Phase) -> None:
        """Change phase (checked against the transition table) and record a step."""
        check(self.phase, phase)
        st.set_phase(self.status, phase, self.at, self.canary.spec.target_ref.kind or "Deployment")
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
