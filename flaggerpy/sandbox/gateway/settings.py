"""The data plane's settings and the names it writes (its controllerName and the listener port annotation)."""

from __future__ import annotations

from dataclasses import dataclass

CONTROLLER_NAME = "sandbox.flaggerpy.io/gateway-controller"
PORT_ANNOTATION = "sandbox.flaggerpy.io/port"
# Gateway controllers known to run against the sandbox: their Gateways are theirs alone.
OTHER_CONTROLLERS = frozenset({"traefik.io/gateway-controller"})


@dataclass(frozen=True, slots=True)
class DataPlaneSettings:
    """Every knob of the data plane; tests override the ones they care about."""

    controller_name: str = CONTROLLER_NAME
    # GatewayClass controllerNames of other Gateway implementations running against the sandbox: their Gateways
    # are neither programmed nor given status by the data plane, and routes' parentRefs to them are left alone.
    other_controllers: frozenset[str] = OTHER_CONTROLLERS
    # Seconds between a change and the Gateway acting on it, like a real proxy's config propagation.
    programming_delay: float = 0.0
    # Mean latency of a workload without a latency annotation.
    default_latency_ms: float = 2.0
    # Log-normal sigma of simulated latencies (0 = every response takes exactly the mean).
    latency_jitter: float = 0.25
    # Seed of the traffic RNG; a fixed seed makes splits, errors and latencies reproducible.
    seed: int | None = None
    # Minimum seconds between two programming passes; changes arriving meanwhile are handled together.
    min_interval: float = 0.005
    # Seconds before retrying a status write that failed for another reason than the object being gone, and before
    # resubscribing after the change stream ended.
    retry_delay: float = 1.0
    # Status writes in one pass between two yields to the event loop, so a pass over thousands of routes does not
    # stall the sandbox's API server.
    writes_per_yield: int = 100
    # Upper bound on the share of time spent programming under sustained churn, so a large sandbox keeps CPU for the
    # controller under test. Programming time is budgeted like a token bucket: it is earned at ``max_busy`` seconds
    # per second up to ``busy_burst`` seconds, and a pass that overdraws it delays the next until it is repaid. The
    # pass that loads a full listing (at start, or to recover) is not charged, so it never holds back later changes.
    max_busy: float = 0.2
    busy_burst: float = 1.0
    # Bounds on synthetic traffic: concurrent generators, and requests per second of one generator.
    max_generators: int = 32
    max_rps: float = 5000.0
    # How often a generator wakes to send the requests it owes.
    generator_tick: float = 0.01
    # Real HTTP: the address listeners bind, the proxy's per-request timeout, and how many mirrored requests may
    # be in flight before further mirrors are dropped.
    listen_host: str = "127.0.0.1"
    upstream_timeout: float = 30.0
    max_inflight_mirrors: int = 256
