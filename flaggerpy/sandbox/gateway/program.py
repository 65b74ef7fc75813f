"""The data plane's incremental programmer: cluster changes in, routing-table updates and status writes out.

It keeps the objects the Gateway reads, indexed by what depends on what (a Gateway → the routes naming it, a Service
→ the routes using it, a namespace → its routes), so one change re-evaluates only the routes, Gateways and Services
it can affect. A route's status is written when its desired status differs from the stored one: once per
generation, and never for the echo of our own write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flaggerpy.sandbox.gateway.status import (
    GATEWAY_GROUP,
    World,
    class_status,
    evaluate_route,
    gateway_status,
    is_ours,
    route_dependencies,
)
from flaggerpy.sandbox.gateway.table import GRPCROUTE, HTTPROUTE, Resolver, RouteKey, RoutingTable
from flaggerpy.sandbox.gateway.workloads import WorkloadIndex

ROUTE_KINDS = {"httproutes": HTTPROUTE, "grpcroutes": GRPCROUTE}
ROUTE_PLURALS = {kind: plural for plural, kind in ROUTE_KINDS.items()}
WORKLOAD_KINDS = {"deployments": "Deployment", "daemonsets": "DaemonSet"}
# Errors a malformed object raises while it is read; anything else is a bug and ends the pass.
MALFORMED = (AttributeError, KeyError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """A status the programmer wants written: ``status`` merged into the object's status."""

    plural: str
    namespace: str | None
    name: str
    status: dict


@dataclass(slots=True)
class _RouteState:
    """What one route last evaluated to (its object, desired parents, attachments, dependencies)."""

    obj: dict
    parents: list[dict] | None = None
    attachments: list[tuple[str, str, str]] = field(default_factory=list)
    gateways: set[tuple[str, str]] = field(default_factory=set)
    services: set[tuple[str, str]] = field(default_factory=set)


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _rv(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or -1)
    except (TypeError, ValueError):
        return -1


def _same_spec(old: dict | None, new: dict) -> bool:
    """Whether an update changed nothing but status and metadata other than the generation."""
    return (
        old is not None
        and old.get("spec") == new.get("spec")
        and (old.get("metadata") or {}).get("generation") == (new.get("metadata") or {}).get("generation")
    )


def _add(index: dict, keys: Iterable, route: RouteKey) -> None:
    for key in keys:
        index.setdefault(key, set()).add(route)


def _discard(index: dict, keys: Iterable, route: RouteKey) -> None:
    for key in keys:
        routes = index.get(key)
        if routes is not None:
            routes.discard(route)
            if not routes:
                del index[key]


class Programmer:
    """The Gateway controller's state: apply changes with ``apply``, then ``plan`` the status writes."""

    def __init__(self, controller_name: str, table: RoutingTable, workloads: WorkloadIndex,
                 other_controllers: frozenset[str] = frozenset()) -> None:
        self.controller_name = controller_name
        self.other_controllers = other_controllers
        # Gateways whose GatewayClass names one of ``other_controllers``: skipped, their status left to them.
        self.foreign: set[tuple[str, str]] = set()
        self.table = table
        self.workloads = workloads
        self.gateways: dict[tuple[str, str], dict] = {}
        self.classes: dict[str, dict] = {}
        self.routes: dict[RouteKey, _RouteState] = {}
        self.namespaces: dict[str, dict] = {}
        self.services: set[tuple[str, str]] = set()
        self.grants: dict[tuple[str, str], dict] = {}
        self._grant_list: list[dict] = []
        self.world = World(self.gateways, self.namespaces, Resolver(self.services, self._grant_list),
                           controller_name, self.foreign)
        self._by_gateway: dict[tuple[str, str], set[RouteKey]] = {}
        self._by_service: dict[tuple[str, str], set[RouteKey]] = {}
        self._by_backend_namespace: dict[str, set[RouteKey]] = {}
        self._by_namespace: dict[str, set[RouteKey]] = {}
        self._attached: dict[tuple[str, str, str], int] = {}
        self._gateway_desired: dict[tuple[str, str], dict] = {}
        self._dirty_routes: set[RouteKey] = set()
        self._dirty_gateways: set[tuple[str, str]] = set()
        self._dirty_classes: set[str] = set()
        # Problems of malformed objects ("kind namespace/name: problem") found since the last take_problems().
        self.problems: list[str] = []
        # Services whose workload was re-resolved since the last take_resolved(), to warn about bad annotations.
        self.resolved: set[tuple[str, str]] = set()

    # ----- changes ------------------------------------------------------------------------------------------

    def reset(self, objects: dict[tuple[str, str], list[dict]]) -> None:
        """Forget everything and load a full listing: (group, plural) → objects; every object becomes dirty."""
        for route in list(self.routes):
            self.table.replace(route, [])
        for container in (self.gateways, self.classes, self.routes, self.namespaces, self.grants, self._by_gateway,
                          self._by_service, self._by_backend_namespace, self._by_namespace, self._attached,
                          self._gateway_desired, self.foreign):
            container.clear()
        self.services.clear()
        self._grant_list.clear()
        self.workloads.clear()
        for (group, plural), items in objects.items():
            for obj in items:
                self.apply("ADDED", group, plural, obj)

    def apply(self, kind: str, group: str, plural: str, obj: dict) -> None:
        """Take one watch event (ADDED, MODIFIED or DELETED) into account; ``obj`` is kept, never modified."""
        deleted = kind == "DELETED"
        if group == GATEWAY_GROUP and plural in ROUTE_KINDS:
            self._route_changed(ROUTE_KINDS[plural], obj, deleted)
        elif group == GATEWAY_GROUP and plural == "gateways":
            self._gateway_changed(obj, deleted)
        elif group == GATEWAY_GROUP and plural == "gatewayclasses":
            self._class_changed(obj, deleted)
        elif group == GATEWAY_GROUP and plural == "referencegrants":
            self._grant_changed(obj, deleted)
        elif (group, plural) == ("", "services"):
            self._service_changed(obj, deleted)
        elif (group, plural) == ("", "namespaces"):
            self._namespace_changed(obj, deleted)
        elif group == "apps" and plural in WORKLOAD_KINDS:
            namespace, name = _key(obj)
            if deleted:
                self.resolved |= self.workloads.delete_workload(WORKLOAD_KINDS[plural], namespace, name)
            else:
                self.resolved |= self.workloads.put_workload(WORKLOAD_KINDS[plural], obj)

    def _route_changed(self, kind: str, obj: dict, deleted: bool) -> None:
        key = RouteKey(kind, *_key(obj))
        state = self.routes.get(key)
        if state is not None and _rv(obj) < _rv(state.obj):
            return  # an event older than what a listing already gave us
        if deleted:
            if state is not None:
                self._forget_route(key, state)
            self._dirty_routes.discard(key)
            return
        if state is None:
            self.routes[key] = _RouteState(obj)
            self._dirty_routes.add(key)
            return
        unchanged = _same_spec(state.obj, obj) and key not in self._dirty_routes
        state.obj = obj
        if not (unchanged and (obj.get("status") or {}).get("parents") == state.parents):
            # A new generation, or someone else rewrote the status: evaluate again (other controllers' entries
            # are kept, ours restored).
            self._dirty_routes.add(key)

    def _forget_route(self, key: RouteKey, state: _RouteState) -> None:
        self.table.replace(key, [])
        self._count(state.attachments, -1)
        _discard(self._by_gateway, state.gateways, key)
        _discard(self._by_service, state.services, key)
        _discard(self._by_backend_namespace, {ns for ns, _ in state.services if ns != key.namespace}, key)
        _discard(self._by_namespace, [key.namespace], key)
        del self.routes[key]

    def _gateway_changed(self, obj: dict, deleted: bool) -> None:
        key = _key(obj)
        old = self.gateways.get(key)
        if old is not None and _rv(obj) < _rv(old):
            return
        if deleted:
            self.gateways.pop(key, None)
            self.foreign.discard(key)
            self._gateway_desired.pop(key, None)
            self._dirty_gateways.discard(key)
            self._dirty_routes |= self._by_gateway.get(key, set())
            return
        self.gateways[key] = obj
        if self._update_foreign(key) or not _same_spec(old, obj):
            self._dirty_routes |= self._by_gateway.get(key, set())
            self._dirty_gateways.add(key)
        elif not self._status_holds(obj.get("status") or {}, self._gateway_desired.get(key)):
            self._dirty_gateways.add(key)

    def _class_changed(self, obj: dict, deleted: bool) -> None:
        name = _key(obj)[1]
        old = self.classes.get(name)
        if old is not None and _rv(obj) < _rv(old):
            return
        if deleted:
            self.classes.pop(name, None)
            self._dirty_classes.discard(name)
        else:
            self.classes[name] = obj
            self._dirty_classes.add(name)
        for key, gateway in self.gateways.items():
            if (gateway.get("spec") or {}).get("gatewayClassName") == name and self._update_foreign(key):
                self._dirty_routes |= self._by_gateway.get(key, set())
                self._dirty_gateways.add(key)

    def _update_foreign(self, key: tuple[str, str]) -> bool:
        """Re-decide whether Gateway ``key`` belongs to another controller; True when that changed."""
        class_name = (self.gateways[key].get("spec") or {}).get("gatewayClassName")
        gateway_class = self.classes.get(class_name) if isinstance(class_name, str) else None
        controller = ((gateway_class or {}).get("spec") or {}).get("controllerName")
        foreign = controller in self.other_controllers
        if foreign == (key in self.foreign):
            return False
        if foreign:
            self.foreign.add(key)
        else:
            self.foreign.discard(key)
        return True

    def _grant_changed(self, obj: dict, deleted: bool) -> None:
        key = _key(obj)
        if deleted:
            self.grants.pop(key, None)
        else:
            self.grants[key] = obj
        self._grant_list[:] = self.grants.values()
        self._dirty_routes |= self._by_backend_namespace.get(key[0], set())

    def _service_changed(self, obj: dict, deleted: bool) -> None:
        key = _key(obj)
        if deleted:
            self.services.discard(key)
            self.workloads.delete_service(*key)
            self._dirty_routes |= self._by_service.get(key, set())
            return
        if key not in self.services:
            # Existence is all a backendRef's resolution depends on.
            self.services.add(key)
            self._dirty_routes |= self._by_service.get(key, set())
        self.workloads.put_service(obj)
        self.resolved.add(key)

    def _namespace_changed(self, obj: dict, deleted: bool) -> None:
        name = _key(obj)[1]
        labels = {} if deleted else (obj.get("metadata") or {}).get("labels") or {}
        if self.namespaces.get(name, {}) != labels:
            # Only listeners with a namespace selector care, and only about routes in this namespace.
            self._dirty_routes |= self._by_namespace.get(name, set())
        if deleted:
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = labels

    # ----- programming --------------------------------------------------------------------------------------

    def plan(self, now: str) -> list[StatusWrite]:
        """Re-evaluate what changed; update the routing table; the status writes that make the cluster agree."""
        writes: list[StatusWrite] = []
        for key in sorted(self._dirty_routes):
            state = self.routes.get(key)
            if state is not None:
                write = self._evaluate(key, state, now)
                if write is not None:
                    writes.append(write)
        self._dirty_routes.clear()
        for name in sorted(self._dirty_classes):
            gateway_class = self.classes.get(name)
            if gateway_class is None or not is_ours(gateway_class, self.controller_name):
                continue
            status = class_status(gateway_class, now)
            if (gateway_class.get("status") or {}).get("conditions") != status["conditions"]:
                writes.append(StatusWrite("gatewayclasses", None, name, status))
        self._dirty_classes.clear()
        for namespace, name in sorted(self._dirty_gateways):
            gateway = self.gateways.get((namespace, name))
            if gateway is None or (namespace, name) in self.foreign:
                continue
            try:
                status = gateway_status(gateway, self._attached, now)
            except MALFORMED as exc:
                self.problems.append(f"Gateway {namespace}/{name}: cannot be read ({exc!r})")
                continue
            self._gateway_desired[(namespace, name)] = status
            if not self._status_holds(gateway.get("status") or {}, status):
                writes.append(StatusWrite("gateways", namespace, name, status))
        self._dirty_gateways.clear()
        return writes

    @staticmethod
    def _status_holds(current: dict, desired: dict | None) -> bool:
        return desired is not None and all(current.get(key) == value for key, value in desired.items())

    def _evaluate(self, key: RouteKey, state: _RouteState, now: str) -> StatusWrite | None:
        route = state.obj
        gateways, services = route_dependencies(route)
        self._reindex(key, state, gateways, services)
        try:
            result = evaluate_route(key.kind, route, self.world, now)
        except MALFORMED as exc:
            self.problems.append(f"{key.kind} {key.namespace}/{key.name}: cannot be read ({exc!r})")
            self._set_attachments(state, [])
            self.table.replace(key, [])
            state.parents = None
            return None
        self._set_attachments(state, result.attachments)
        self.table.replace(key, result.entries)
        state.parents = result.parents
        if result.parents is None or (route.get("status") or {}).get("parents") == result.parents:
            return None
        return StatusWrite(ROUTE_PLURALS[key.kind], key.namespace, key.name, {"parents": result.parents})

    def _reindex(self, key: RouteKey, state: _RouteState, gateways: set[tuple[str, str]],
                 services: set[tuple[str, str]]) -> None:
        _discard(self._by_gateway, state.gateways - gateways, key)
        _add(self._by_gateway, gateways - state.gateways, key)
        _discard(self._by_service, state.services - services, key)
        _add(self._by_service, services - state.services, key)
        old_foreign = {ns for ns, _ in state.services if ns != key.namespace}
        new_foreign = {ns for ns, _ in services if ns != key.namespace}
        _discard(self._by_backend_namespace, old_foreign - new_foreign, key)
        _add(self._by_backend_namespace, new_foreign - old_foreign, key)
        _add(self._by_namespace, [key.namespace], key)
        state.gateways, state.services = gateways, services

    def _set_attachments(self, state: _RouteState, attachments: list[tuple[str, str, str]]) -> None:
        if attachments != state.attachments:
            self._count(state.attachments, -1)
            self._count(attachments, 1)
            state.attachments = attachments

    def _count(self, attachments: list[tuple[str, str, str]], delta: int) -> None:
        for listener in attachments:
            count = self._attached.get(listener, 0) + delta
            if count:
                self._attached[listener] = count
            else:
                self._attached.pop(listener, None)
            # A listener's attachedRoutes changed: its Gateway's status must follow.
            self._dirty_gateways.add(listener[:2])

    def redo(self, write: StatusWrite) -> None:
        """A status write failed: evaluate its object again on the next ``plan``."""
        if write.plural in ROUTE_KINDS:
            self._dirty_routes.add(RouteKey(ROUTE_KINDS[write.plural], write.namespace or "", write.name))
        elif write.plural == "gateways":
            self._dirty_gateways.add((write.namespace or "", write.name))
        else:
            self._dirty_classes.add(write.name)
