"""The one Settings root of a controller process: every tunable is reachable from it.

``flaggerpy run`` maps its flags and their environment variables (runflags) onto it once; everything below reads
only its part of the tree. The leaves are each module's own settings object (the client's, the watch's, the work
queue's, the engine's, the metric checks', the webhooks', ...), so tests and embedders override exactly one field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flaggerpy.canary.wiring import WiringSettings
from flaggerpy.kube.settings import LeaderSettings


@dataclass(frozen=True)
class TelemetrySettings:
    """The server of ``/metrics``, ``/healthz`` and ``/readyz``."""

    listen_address: str = "0.0.0.0"
    port: int = 8080


@dataclass(frozen=True)
class LeaderElection:
    """Whether this replica campaigns for the Lease, where the Lease lives and its timings."""

    enabled: bool = False
    namespace: str = "kube-system"
    lease: LeaderSettings = field(default_factory=LeaderSettings)


@dataclass(frozen=True)
class LogSettings:
    """How the process logs."""

    level: str = "info"
    json: bool | None = None
    """True: JSON lines, False: console lines, None: JSON unless stderr is a terminal."""


@dataclass(frozen=True)
class Settings:
    """Everything a controller process is configured with."""

    wiring: WiringSettings = field(default_factory=WiringSettings)
    """What the controller connects to and how it behaves (client, informers, queue, engine, analysis, alerts)."""
    leader_election: LeaderElection = field(default_factory=LeaderElection)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    log: LogSettings = field(default_factory=LogSettings)
