"""The sandbox's simulated Gateway data plane: an in-sandbox controller that programs every Gateway.

It watches Gateways, HTTPRoutes, GRPCRoutes (all served versions), Services, workloads, Namespaces and
ReferenceGrants through the sandbox's ``Cluster``; after each burst of changes it re-evaluates only what those
changes affect (see ``dataplane_program``), updates the routing table for the affected routes' hostnames, and
writes the Gateway and route statuses that differ. Requests, synthetic (``handle``/``start_traffic``) or real
(``listen``), are matched and split like a real Gateway and counted per backend, route and workload (see
``dataplane_stats`` for the exported metric names).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from flaggerpy.sandbox.clock import now
from flaggerpy.sandbox.gateway.http import control_routes
from flaggerpy.sandbox.gateway.match import Request
from flaggerpy.sandbox.gateway.program import Programmer, StatusWrite
from flaggerpy.sandbox.gateway.proxy import GatewayListener
from flaggerpy.sandbox.gateway.settings import CONTROLLER_NAME, PORT_ANNOTATION, DataPlaneSettings
from flaggerpy.sandbox.gateway.stats import DataPlaneStats, SeriesStats
from flaggerpy.sandbox.gateway.status import GATEWAY_GROUP
from flaggerpy.sandbox.gateway.table import Decision, Mirror, Response, RouteKey, RoutingTable, ServiceRef
from flaggerpy.sandbox.gateway.traffic import FieldProblem, TrafficError, TrafficGenerator, TrafficSpec
from flaggerpy.sandbox.gateway.workloads import NO_ENDPOINTS, Behaviour, Workload, WorkloadIndex

if TYPE_CHECKING:
    from aiohttp import web

# The sandbox is a standalone server: it logs through structlog directly, never through flaggerpy.log.
log = structlog.get_logger(logger_name="flaggerpy.sandbox.dataplane")

# (group, plural) pairs whose changes can alter statuses, the routing table or workload behaviour.
WATCHED: frozenset[tuple[str, str]] = frozenset(
    {
        (GATEWAY_GROUP, "gateways"),
        (GATEWAY_GROUP, "gatewayclasses"),
        (GATEWAY_GROUP, "httproutes"),
        (GATEWAY_GROUP, "grpcroutes"),
        (GATEWAY_GROUP, "referencegrants"),
        ("", "services"),
        ("", "namespaces"),
        ("apps", "deployments"),
        ("apps", "daemonsets"),
    }
)


class Change(Protocol):
    """A watch event from the sandbox cluster."""

    type: str
    group: str
    plural: str
    object: dict


class Cluster(Protocol):
    """The part of the sandbox's in-process cluster interface the data plane uses."""

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict]: ...

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict | None: ...

    def changes(self, resources: Iterable[tuple[str, str]] | None = None) -> AsyncIterator[Change]: ...

    async def patch_status(self, group: str, plural: str, namespace: str | None, name: str,
                           status: dict) -> dict: ...


# One change as the programmer takes it: (event type, group, plural, object). The object is only ever read.
Update = tuple[str, str, str, dict]


async def _updates(cluster: Cluster) -> AsyncGenerator[Update, None]:
    """The watched changes; shared, uncopied objects when the cluster offers them (the sandbox's never change)."""
    raw = getattr(cluster, "subscribe_events", None)
    # A private copy of every route echo would cost more than programming it, at thousands of routes.
    stream: Any = raw() if raw is not None else cluster.changes(WATCHED)
    try:
        async for item in stream:
            if raw is None:
                yield item.type, item.group, item.plural, item.object
            elif item.key in WATCHED:
                yield item.type, item.key[0], item.key[1], item.obj
    finally:
        await stream.aclose()


def _listing(cluster: Cluster, group: str, plural: str) -> list[dict]:
    """Every object of a resource; shared (not copied) when the cluster exposes its store."""
    store = getattr(cluster, "store", None)
    if store is None:
        return cluster.list(group, plural)
    return list(store.items((group, plural)))


class GatewayDataPlane:
    """The simulated Gateway controller and proxy; ``Sandbox(dataplane=True)`` runs one."""

    name = "gateway-dataplane"

    def __init__(self, settings: DataPlaneSettings | None = None) -> None:
        self.settings = settings or DataPlaneSettings()
        self.rng = random.Random(self.settings.seed)
        self.counters = DataPlaneStats()
        self._table = RoutingTable()
        self._index = WorkloadIndex(self.settings.default_latency_ms)
        # Read by workload_of on every request; the index keeps this very dict current.
        self._workloads: dict[tuple[str, str], Workload | None] = self._index.resolved
        self._programmer = Programmer(self.settings.controller_name, self._table, self._index,
                                      self.settings.other_controllers)
        self._pending: list[Update] = []
        self._resync = True
        self._warned: set[str] = set()
        self._cluster: Cluster | None = None
        self._dirty = asyncio.Event()
        self._programmed = asyncio.Event()
        self._generators: dict[str, TrafficGenerator] = {}
        self._listeners: dict[tuple[str, str], GatewayListener] = {}

    def reseed(self, seed: int) -> None:
        """Restart the traffic RNG from ``seed`` (for reproducible runs in a sandbox started with defaults)."""
        self.rng.seed(seed)

    # ----- controller -----------------------------------------------------------------------------------------

    async def run(self, cluster: Cluster) -> None:
        """Program Gateways from ``cluster`` until cancelled; then stop traffic and close listeners."""
        self._cluster = cluster
        programmer = asyncio.create_task(self._program_loop(cluster), name="dataplane-program")
        try:
            while True:
                await self._follow(cluster)
                # The change stream ended (this reader fell too far behind): list everything again. Changes made
                # meanwhile are in that listing, so pausing first only spares a spin when streams keep ending.
                log.warning("change stream ended; resyncing the data plane")
                await asyncio.sleep(self.settings.retry_delay)
        finally:
            programmer.cancel()
            await asyncio.gather(programmer, return_exceptions=True)
            await self.close()

    async def _follow(self, cluster: Cluster) -> None:
        changes = _updates(cluster)
        # Subscribe before listing, so nothing committed in between is missed; events the listing already
        # reflects are recognised by their resourceVersion and skipped.
        first = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(0)
            self._pending.clear()
            self._resync = True
            self._note_change()
            change = await first
            while True:
                self._pending.append(change)
                self._note_change()
                change = await anext(changes)
        except StopAsyncIteration:
            return
        finally:
            # The generator can only be closed once the task that may still be advancing it has finished.
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await changes.aclose()

    def _note_change(self) -> None:
        self._programmed.clear()
        self._dirty.set()

    async def _program_loop(self, cluster: Cluster) -> None:
        loop = asyncio.get_running_loop()
        busy = min(max(self.settings.max_busy, 0.01), 1.0)
        budget, last_end = self.settings.busy_burst, loop.time()
        while True:
            await self._dirty.wait()
            # Bursts of changes (a controller writing many objects) coalesce into one pass.
            idle = loop.time() - last_end
            repay = -(budget + idle * busy) / busy
            wait = max(self.settings.programming_delay, self.settings.min_interval - idle, repay)
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            started = loop.time()
            budget = min(self.settings.busy_burst, budget + (started - last_end) * busy)
            # A full listing is a one-off (start, or recovery): it is not charged to the budget of later changes.
            charged = not self._resync
            try:
                await self._program(cluster)
            except Exception:
                # A failed pass must not stop the Gateway: the next one reprograms from a fresh listing.
                log.exception("programming the gateways failed")
                self._resync = True
                loop.call_later(self.settings.retry_delay, self._note_change)
            last_end = loop.time()
            if charged:
                budget -= last_end - started
            if not self._dirty.is_set():
                self._programmed.set()

    async def wait_programmed(self) -> None:
        """Wait until every change seen so far is programmed (for tests and demos)."""
        await self._programmed.wait()

    async def _program(self, cluster: Cluster) -> None:
        changes, self._pending = self._pending, []
        programmer = self._programmer
        if self._resync:
            self._resync = False
            programmer.reset({(group, plural): _listing(cluster, group, plural) for group, plural in WATCHED})
        for change in changes:
            programmer.apply(*change)
        writes = programmer.plan(now())
        self._warn_problems()
        for number, write in enumerate(writes, 1):
            await self._patch(cluster, write)
            if number % max(self.settings.writes_per_yield, 1) == 0:
                await asyncio.sleep(0)

    def _warn_problems(self) -> None:
        problems, self._programmer.problems = self._programmer.problems, []
        for problem in problems:
            self._warn_once("ignoring malformed object", problem)
        resolved, self._programmer.resolved = self._programmer.resolved, set()
        for service in resolved:
            workload = self._workloads.get(service)
            if workload is None:
                continue
            for problem in workload.problems:
                self._warn_once("ignoring workload annotation",
                                f"{workload.kind} {workload.namespace}/{workload.name}: {problem}")

    def _warn_once(self, event: str, problem: str) -> None:
        # The same objects are re-read after every change; a problem is worth one log line, not one per change.
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning(event, problem=problem)

    async def _patch(self, cluster: Cluster, write: StatusWrite) -> None:
        try:
            await cluster.patch_status(GATEWAY_GROUP, write.plural, write.namespace, write.name, write.status)
        except Exception as exc:
            if cluster.get(GATEWAY_GROUP, write.plural, write.namespace, write.name) is None:
                # Deleted between the change and the write; its DELETED event is on its way.
                return
            log.info("status write failed; retrying", resource=write.plural,
                     object=f"{write.namespace}/{write.name}", error=str(exc))
            self._programmer.redo(write)
            asyncio.get_running_loop().call_later(self.settings.retry_delay, self._note_change)

    # ----- requests -------------------------------------------------------------------------------------------

    def decide(self, request: Request, gateway: tuple[str, str] | None = None) -> Decision:
        """Match ``request`` and pick its backend by weight; mirrors are drawn here too."""
        rule = self._table.select(request, gateway)
        if rule is None:
            return Decision(None, None, 404, [])
        headers: list[tuple[str, str]] = []
        for edits in rule.response_edits:
            edits.apply(headers)
        mirrors = self._draw_mirrors(rule.mirrors)
        if rule.total_weight <= 0:
            # No backendRefs, or all at weight 0: the spec asks for a 500.
            return Decision(rule, None, 500, headers, mirrors)
        pick = self.rng.randrange(rule.total_weight)
        chosen = rule.backends[-1]
        for backend in rule.backends:
            if pick < backend.weight:
                chosen = backend
                break
            pick -= backend.weight
        for edits in chosen.response_edits:
            edits.apply(headers)
        mirrors += self._draw_mirrors(chosen.mirrors)
        if not chosen.resolved:
            return Decision(rule, chosen, 500, headers, mirrors)
        return Decision(rule, chosen, None, headers, mirrors)

    def _draw_mirrors(self, mirrors: tuple[Mirror, ...]) -> list[ServiceRef]:
        return [
            mirror.target
            for mirror in mirrors
            if mirror.resolved and mirror.numerator > 0 and self.rng.randrange(mirror.denominator) < mirror.numerator
        ]

    def workload_of(self, service: ServiceRef) -> Workload | None:
        """The workload behind a backend Service, or None when its selector reaches none."""
        return self._workloads.get((service.namespace, service.name))

    def record(self, service: ServiceRef, route: RouteKey | None, code: int, latency_ms: float) -> None:
        """Count one upstream response for ``service`` (Istio series only when a ready pod answered)."""
        workload = self.workload_of(service)
        reached = workload is not None and workload.behaviour.ready
        self.counters.record(
            (service.namespace, service.name, service.port),
            (route.kind, route.namespace, route.name) if route else None,
            (workload.namespace, workload.name, workload.pod) if reached and workload else None,
            code,
            latency_ms,
        )

    def record_local(self, decision: Decision) -> None:
        """Count an answer the Gateway gave itself (404/500): on the backend it picked, else on the route."""
        if decision.status is None:
            return
        route = decision.rule.route if decision.rule else None
        if decision.backend is not None:
            self.record(decision.backend.ref, route, decision.status, 0.0)
        elif route is not None:
            self.counters.record_route_only((route.kind, route.namespace, route.name), decision.status, 0.0)

    def handle(self, request: Request, gateway: tuple[str, str] | None = None) -> Response:
        """Serve one synthetic request: match, split, mirror, simulate the workload and count it."""
        decision = self.decide(request, gateway)
        route = decision.rule.route if decision.rule else None
        rule_index = decision.rule.index if decision.rule else None
        for mirror in decision.mirrors:
            self._simulate(mirror, route)
        if decision.status is not None:
            self.record_local(decision)
            return Response(decision.status, 0.0, decision.backend.ref if decision.backend else None, route,
                            rule_index, None, tuple(decision.headers), tuple(decision.mirrors))
        assert decision.backend is not None
        code, latency, workload = self._simulate(decision.backend.ref, route)
        return Response(code, latency, decision.backend.ref, route, rule_index, workload,
                        tuple(decision.headers), tuple(decision.mirrors))

    def _simulate(self, service: ServiceRef, route: RouteKey | None) -> tuple[int, float, str | None]:
        workload = self.workload_of(service)
        code, latency = self.sample(workload.behaviour if workload else NO_ENDPOINTS)
        self.record(service, route, code, latency)
        return code, latency, workload.name if workload else None

    def sample(self, behaviour: Behaviour) -> tuple[int, float]:
        """One simulated response of a workload: (status code, latency ms), drawn from the data plane's RNG."""
        return behaviour.sample(self.rng, self.settings.latency_jitter)

    def stats(self, namespace: str, service: str) -> SeriesStats:
        """Counters of backend Service namespace/service (all ports)."""
        return self.counters.service(namespace, service)

    def route_stats(self, namespace: str, name: str, kind: str = "HTTPRoute") -> SeriesStats:
        """Counters of one route."""
        return self.counters.route(namespace, name, kind)

    # ----- synthetic traffic ----------------------------------------------------------------------------------

    def start_traffic(
        self,
        host: str,
        path: str = "/",
        rps: float = 50,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> str:
        """Start a generator (options: method, query, duration, gateway "ns/name", keepCookies); returns its id.

        Raises TrafficError naming bad fields, or when ``max_generators`` are already running.
        """
        body = {"host": host, "path": path, "rps": rps, "headers": headers or {}, **options}
        return self.start_traffic_spec(TrafficSpec.from_json(body, self.settings.max_rps))

    def start_traffic_spec(self, spec: TrafficSpec) -> str:
        """Start a generator for a validated spec; returns its id."""
        self._generators = {key: gen for key, gen in self._generators.items() if gen.task and not gen.task.done()}
        if len(self._generators) >= self.settings.max_generators:
            limit = self.settings.max_generators
            raise TrafficError([FieldProblem("traffic", f"at most {limit} generators may run at once")])
        generator = TrafficGenerator(spec, self.handle, self.settings.generator_tick)
        generator.task = asyncio.get_running_loop().create_task(generator.run(), name=generator.id)
        self._generators[generator.id] = generator
        return generator.id

    def traffic(self) -> list[dict]:
        """Descriptions of the generators started and not yet pruned."""
        return [generator.describe() for generator in self._generators.values()]

    async def stop_traffic(self, traffic_id: str | None = None) -> int:
        """Stop one generator, or all when ``traffic_id`` is None; returns how many were stopped."""
        chosen = [
            generator for key, generator in list(self._generators.items()) if traffic_id in (None, key)
        ]
        for generator in chosen:
            self._generators.pop(generator.id, None)
            if generator.task is not None:
                generator.task.cancel()
        await asyncio.gather(*(g.task for g in chosen if g.task is not None), return_exceptions=True)
        return len(chosen)

    # ----- real HTTP ------------------------------------------------------------------------------------------

    async def listen(self, gateway_namespace: str, gateway_name: str) -> int:
        """Serve real HTTP for one Gateway on ``listen_host``; returns the port (the same one on a repeat call).

        The port is also published on the Gateway as annotation ``sandbox.flaggerpy.io/port`` when the cluster
        supports metadata patches.
        """
        key = (gateway_namespace, gateway_name)
        listener = self._listeners.get(key)
        if listener is None:
            listener = GatewayListener(
                self, key, self.settings.listen_host, self.settings.upstream_timeout,
                self.settings.max_inflight_mirrors,
            )
            await listener.start()
            self._listeners[key] = listener
            await self._publish_port(key, listener.port)
        return listener.port

    def ports(self) -> dict[str, int]:
        """Open real-HTTP listeners: "namespace/name" → port."""
        return {f"{ns}/{name}": listener.port for (ns, name), listener in self._listeners.items()}

    async def _publish_port(self, key: tuple[str, str], port: int) -> None:
        patch = getattr(self._cluster, "patch", None)
        if patch is None:
            return
        try:
            await patch(
                GATEWAY_GROUP, "gateways", key[0], key[1],
                {"metadata": {"annotations": {PORT_ANNOTATION: str(port)}}},
            )
        except Exception as exc:
            log.info("could not annotate gateway with its port", gateway=f"{key[0]}/{key[1]}", error=str(exc))

    async def close(self) -> None:
        """Stop all traffic generators and real-HTTP listeners."""
        await self.stop_traffic()
        listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            await listener.stop()

    def routes(self) -> list[web.RouteDef]:
        """The control endpoints under /sandbox/dataplane, mounted by the sandbox server."""
        return control_routes(self)


__all__ = [
    "CONTROLLER_NAME",
    "PORT_ANNOTATION",
    "DataPlaneSettings",
    "Decision",
    "GatewayDataPlane",
    "Request",
    "Response",
    "SeriesStats",
    "TrafficError",
]
