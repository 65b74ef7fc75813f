"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Safety rests on two rules. A candidate only takes a lease whose record it has watched stay unchanged for a full
``lease_duration`` of its OWN clock (remote timestamps are never trusted). A leader that has not renewed
successfully for ``renew_deadline`` (< ``lease_duration``) stops leading, measured from the moment it SENT the last
successful renewal. So a standby can only win after the old leader has already stepped down.

Neither side reads the Lease in the steady state: the leader replaces the Lease its last write returned (the
resourceVersion makes that a compare-and-swap) and a standby follows it through a watch. Every write is guarded by
the resourceVersion it was based on, so a lagging watch can only cost a 409, after which the next round reads.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.resources import LEASES
from flaggerpy.kube.settings import LeaderSettings
from flaggerpy.log import get_logger

log = get_logger(__name__)

Callback = Callable[[], Awaitable[None] | None]


def default_identity() -> str:
    """``hostname_pid``: unique per process on a node, readable in ``kubectl get lease -o yaml``."""
    return f"{socket.gethostname()}_{os.getpid()}"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _call(callback: Callback | None) -> None:
    if callback is None:
        return
    try:
        result = callback()
        if inspect.isawaitable(result):
            await result
    except Exception:  # a callback bug must not corrupt the election state machine
        log.exception("leader election callback failed")


class LeaderElector:
    """Campaign for the Lease ``namespace/name``; lead while renewals succeed.

    ``await elector.stop()`` steps down gracefully and releases the lease so a standby takes over at once.
    Cancelling the task instead simulates a crash: the lease expires after ``lease_duration``.
    """

    def __init__(
        self,
        kube: KubeClient,
        name: str,
        namespace: str,
        identity: str | None = None,
        *,
        settings: LeaderSettings | None = None,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
    ) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.settings = settings or LeaderSettings()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.leading = asyncio.Event()
        """Set while this process leads; await ``leading.wait()`` to gate work on leadership."""
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The last lease record seen and when (our monotonic clock) it last changed.
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._last_attempt = 0.0
        self._lead_deadline = 0.0
        # The Lease as our last successful write returned it: a renewal replaces it with that resourceVersion
        # (the server's compare-and-swap) instead of reading it first; only a 409 sends us back to a GET.
        self._written: Obj | None = None
        self._watch: Informer | None = None
        # Set when a write from the watched copy lost a race: the next round reads the server's Lease instead.
        self._stale = False

    @property
    def is_leader(self) -> bool:
        """True while this elector holds the lease and its last renewal is within ``renew_deadline``."""
        return self.leading.is_set() and time.monotonic() < self._lead_deadline

    def write_fence(self) -> Callable[[str], bool]:
        """A fence for :meth:`KubeClient.set_write_fence`: Lease writes always pass (the election itself), any other
        write only while :attr:`is_leader`, so nothing is written once the renew deadline has passed."""
        lease = str(LEASES)

        def fence(resource: str) -> bool:
            return resource == lease or self.is_leader

        return fence

    def start(self) -> asyncio.Task[None]:
        """Run the election as a task (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"leader-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Step down (releasing the lease if leading and ``release_on_stop``) and wait for the task to end."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def __aenter__(self) -> LeaderElector:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Campaign and lead until :meth:`stop`; losing the lease returns to campaigning."""
        # A watch on the one Lease tells a standby what a GET every retry_period would, without the reads.
        watch = Informer(self.kube, LEASES, self.namespace, field_selector=f"metadata.name={self.name}")
        self._watch = watch
        watch.start()
        try:
            while not self._stopping.is_set():
                if await self._campaign():
                    await self._lead()
        except asyncio.CancelledError:
            # Cancelled means killed: stop claiming leadership at once, leave the lease to expire like a crash.
            self._set_leading(False)
            raise
        finally:
            await watch.stop()
            self._watch = None
        await self._step_down()

    async def _pause(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if stop() was called meanwhile."""
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _campaign(self) -> bool:
        while not self._stopping.is_set():
            if await self._try_acquire_or_renew():
                return True
            if await self._pause(self.settings.retry_period):
                return False
        return False

    async def _lead(self) -> None:
        self._lead_deadline = self._last_attempt + self.settings.renew_deadline
        self._set_leading(True)
        log.info("started leading", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        await _call(self.on_started_leading)
        # Never sleep past the renew deadline: stepping down late could overlap a standby's takeover.
        while not await self._pause(min(self.settings.retry_period, self._lead_deadline - time.monotonic())):
            remaining = self._lead_deadline - time.monotonic()
            renewed = False
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._try_acquire_or_renew()
                except TimeoutError:
                    renewed = False
            if renewed:
                self._lead_deadline = self._last_attempt + self.settings.renew_deadline
            elif time.monotonic() >= self._lead_deadline:
                log.warning(
                    "failed to renew lease within the renew deadline; stepping down",
                    lease=f"{self.namespace}/{self.name}",
                    identity=self.identity,
                )
                await self._step_down(release=False)
                return
        # stop() was called while leading: _step_down in run() releases the lease.

    def _set_leading(self, value: bool) -> None:
        if value:
            self.leading.set()
        else:
            self.leading.clear()

    async def _step_down(self, release: bool | None = None) -> None:
        if not self.leading.is_set():
            return
        self._set_leading(False)
        if not (self.settings.release_on_stop if release is None else release):
            self._written = None  # campaign again from what the server holds
        log.info("stopped leading", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        if self.settings.release_on_stop if release is None else release:
            await self._release()
        await _call(self.on_stopped_leading)

    def _observe(self, spec: dict[str, Any]) -> None:
        record = (
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
            str(spec.get("leaseTransitions") or 0),
        )
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    def _record(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        old = old or {}
        mine = old.get("holderIdentity") == self.identity
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration)),
            "acquireTime": old.get("acquireTime") if mine and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": transitions if mine or not old else transitions + 1,
        }

    async def _try_acquire_or_renew(self) -> bool:
        """One acquire/renew round; False when someone else holds the lease or the write lost a race."""
        self._last_attempt = time.monotonic()
        if self._written is not None:
            renewed = await self._renew_written(self._written)
            if renewed is not None:
                return renewed
        watch = self._watch
        if watch is not None and watch.has_synced and not self._stale:
            # The watched copy may lag the server: a write from it then fails the resourceVersion check (409).
            cached = watch.store.get_by_name(self.namespace, self.name)
            if cached is None:
                return await self._create()
            lease = {**cached}
        else:
            try:
                lease = await self.kube.get(LEASES, self.name, self.namespace)
                self._stale = False
            except NotFound:
                return await self._create()
            except ApiError as exc:
                log.warning("cannot read lease", lease=f"{self.namespace}/{self.name}", error=str(exc))
                return False
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        # Our own lease_duration, not the record's: every replica runs the same configuration, and the record's
        # whole-second field would round short test durations.
        if holder and holder != self.identity and time.monotonic() < self._observed_at + self.settings.lease_duration:
            return False
        lease["spec"] = self._record(spec)
        return await self._send("write", self.kube.replace(LEASES, lease), lost=(Conflict,))

    async def _renew_written(self, written: Obj) -> bool | None:
        """Renew without reading: replace the lease we last wrote, guarded by its resourceVersion.

        True when renewed, False when the write failed otherwise, None after a 409 (someone else wrote the Lease
        since: the caller decides from the Lease as it is now, like a fresh round).
        """
        spec = written.get("spec") or {}
        lease = {**written, "spec": self._record(spec)}
        try:
            updated = await self.kube.replace(LEASES, lease)
        except (Conflict, NotFound):
            self._written = None
            return None
        except ApiError as exc:
            log.warning("cannot renew lease", lease=f"{self.namespace}/{self.name}", error=str(exc))
            return False
        self._accepted(updated)
        return True

    async def _send(self, verb: str, request: Awaitable[Obj], lost: tuple[type[ApiError], ...]) -> bool:
        """Await one write of the lease. Losing the race to another writer (``lost``) marks our copy stale, so the
        next round reads the server's Lease; any other failure is logged. True when the server accepted it."""
        try:
            updated = await request
        except lost:
            self._stale = True
            return False
        except ApiError as exc:
            log.warning(f"cannot {verb} lease", lease=f"{self.namespace}/{self.name}", error=str(exc))
            return False
        self._accepted(updated)
        return True

    def _accepted(self, lease: Obj) -> None:
        """Remember a lease the server accepted from us."""
        self._stale = False
        spec = lease.get("spec") or {}
        self._observe(spec)
        self._written = lease if spec.get("holderIdentity") == self.identity else None

    async def _create(self) -> bool:
        lease: Obj = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._record(None),
        }
        return await self._send("create", self.kube.create(LEASES, lease), lost=(AlreadyExists, Conflict))

    async def _release(self) -> None:
        """Clear the holder (as client-go does) so standbys need not wait for the lease to expire."""
        written, self._written = self._written, None
        try:
            if written is not None:
                try:
                    await self.kube.replace(LEASES, self._released(written))
                    return
                except (Conflict, NotFound):
                    pass  # someone else wrote it since: read it and release only if it is still ours
            lease = await self.kube.get(LEASES, self.name, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            await self.kube.replace(LEASES, self._released(lease))
        except ApiError as exc:
            log.warning("cannot release lease; standbys will wait for it to expire", error=str(exc))

    @staticmethod
    def _released(lease: Obj) -> Obj:
        spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                "renewTime": _micro_time()}
        return {**lease, "spec": spec}
