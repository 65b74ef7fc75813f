"""Every timeout, backoff and limit of the kube layer, as typed fields tests can override.

No number that changes behaviour lives anywhere else in ``flaggerpy.kube``: pass a modified copy
(``dataclasses.replace(ClientSettings(), read_timeout=1.0)``) to make a test fast or a deployment patient.
"""

from __future__ import annotations

from dataclasses import dataclass

CLIENT_GO_DEFAULT_QPS = 5.0
"""client-go's ``rest.DefaultQPS``, used when the QPS is set to 0."""
CLIENT_GO_DEFAULT_BURST = 10
"""client-go's ``rest.DefaultBurst``, used when the burst is set to 0."""


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and retries of single API requests."""

    connect_timeout: float = 5.0
    """Seconds to establish a TCP/TLS connection to the API server."""
    read_timeout: float = 30.0
    """Seconds to wait for (more of) a response before giving up on a non-watch request."""
    retry_attempts: int = 5
    """Attempts per request (first try included) on 429, 5xx and connection errors."""
    backoff_initial: float = 0.2
    """First retry delay in seconds; doubles per attempt."""
    backoff_max: float = 5.0
    """Upper bound of the exponential retry delay."""
    backoff_jitter: float = 0.2
    """Random seconds added to each retry delay so clients that failed together do not retry together."""
    retry_after_max: float = 30.0
    """Cap on a server's ``Retry-After`` so a broken proxy cannot park a worker for hours."""
    list_page_size: int = 500
    """``limit`` of each list page; the client follows ``continue`` tokens until the list is complete."""
    pool_size: int = 64
    """Maximum parallel connections to the API server."""
    qps: float = 100.0
    """Requests per second to the API server over the whole process, once ``burst`` is spent (Flagger's
    ``-kubeconfig-qps``, same default). 0 means client-go's default of 5; a negative value turns the limit off."""
    burst: int = 250
    """Requests sent at once before ``qps`` applies (Flagger's ``-kubeconfig-burst``); 0 means client-go's 10."""

    unthrottled: frozenset[str] = frozenset({"leases.coordination.k8s.io"})
    """Resources whose requests skip the rate limit: a Lease renewal queued behind a backlog of canary writes (a
    thousand canaries initialising) would miss the renew deadline and cost the leadership, so leader election gets
    its own lane, as with client-go's separate leader-election client."""

    def __post_init__(self) -> None:
        if self.burst < 0:
            raise ValueError(f"kubeconfig burst: must be >= 0, got {self.burst}")

    def token_bucket(self) -> tuple[float, int] | None:
        """(qps, burst) of the client's rate limit as client-go reads ``rest.Config``; None when it is off."""
        if self.qps < 0:
            return None
        return (self.qps or CLIENT_GO_DEFAULT_QPS, self.burst or CLIENT_GO_DEFAULT_BURST)


@dataclass(frozen=True)
class WatchSettings:
    """Behaviour of one list+watch stream."""

    idle_timeout: float = 60.0
    """A watch that receives nothing (no event, no bookmark) for this long, plus up to ``idle_timeout_jitter``, is
    taken for hung and re-opened from the last version (a half-open connection never hangs for long)."""
    idle_timeout_jitter: float = 30.0
    """Random seconds added to each stream's idle timeout, so the watches of many resources do not reconnect in
    step."""
    server_timeout_margin: float = 5.0
    """``timeoutSeconds`` asked of the server is the stream's idle timeout minus this: a healthy quiet stream ends
    cleanly (and resumes from its last version) before the client would call it hung."""
    allow_bookmarks: bool = True
    """Ask for BOOKMARK events so the resourceVersion advances even when nothing we watch changes."""
    backoff_initial: float = 0.5
    """First reconnect delay after a failed or dropped stream; doubles per consecutive failure."""
    backoff_max: float = 30.0
    """Cap of the reconnect delay."""
    backoff_jitter: float = 1.0
    """Random seconds added to each reconnect delay."""
    crash_loop_limit: int = 5
    """An informer whose watch loop died this many times in a row (each within ``backoff_reset_after`` of its
    restart) is reported dead to the liveness probe; it keeps restarting meanwhile."""
    backoff_reset_after: float = 60.0
    """A stream that stayed healthy this long, or this long without a failure (or a 410), resets the reconnect (or
    relist) backoff to ``backoff_initial``; consecutive 410s space their relists by this backoff too, the first
    one relisting at once."""


@dataclass(frozen=True)
class WorkQueueSettings:
    """Rate limiting of ``WorkQueue.add_rate_limited``: the larger of a per-key backoff and a shared token bucket
    (client-go's default controller rate limiter, same numbers)."""

    backoff_base: float = 0.005
    """Delay of the first rate-limited requeue of a key; doubles per requeue until ``forget``."""
    backoff_cap: float = 1000.0
    """Maximum per-key requeue delay in seconds."""
    bucket_qps: float = 10.0
    """Rate-limited requeues per second over all keys, once ``bucket_burst`` is spent."""
    bucket_burst: int = 100
    """Rate-limited requeues allowed at once before ``bucket_qps`` applies."""


@dataclass(frozen=True)
class LeaderSettings:
    """Lease-based leader election, same defaults as client-go."""

    lease_duration: float = 15.0
    """Seconds a standby waits after the last renewal before it may take the lease."""
    renew_deadline: float = 10.0
    """The leader gives up leading when it could not renew for this long; must be < ``lease_duration``."""
    retry_period: float = 2.0
    """Seconds between acquire/renew attempts."""
    release_on_stop: bool = True
    """On a graceful stop, clear the holder so a standby takes over at once instead of after ``lease_duration``."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election: need 0 < retry_period < renew_deadline < lease_duration, got "
                f"retry_period={self.retry_period}, renew_deadline={self.renew_deadline}, "
                f"lease_duration={self.lease_duration}"
            )


@dataclass(frozen=True)
class EventSettings:
    """The EventRecorder's aggregation cache."""

    cache_size: int = 4096
    """Distinct (object, type, reason, message) entries remembered for count aggregation (LRU)."""
    max_message_length: int = 1024
    """Longer messages are cut (with an ellipsis) so a huge error text cannot bloat etcd."""
