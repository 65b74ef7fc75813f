"""The cluster's semantics on top of the store: admission, generation, status subresource, finalizers, GC.

The HTTP server and in-sandbox controllers both write through :class:`Cluster`, so a controller's status write is
indistinguishable from one made over the API: it bumps the resourceVersion and emits a watch event.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver import cel_rules, crds, defaults, immutable, metadata
from flaggerpy.sandbox.apiserver.errors import (
    Cause,
    StatusError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from flaggerpy.sandbox.apiserver.patch import merge_patch
from flaggerpy.sandbox.apiserver.registry import CRDS, NAMESPACES, Registry, ResourceType, StorageKey
from flaggerpy.sandbox.apiserver.schema import admit, unknown_fields
from flaggerpy.sandbox.apiserver.store import Event, Store
from flaggerpy.sandbox.clock import now
from flaggerpy.sandbox.controllers import gc

log = get_logger("flaggerpy.sandbox.cluster")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS labels (no dots, 63 characters), as in kube-apiserver.
_DNS_LABEL_KINDS = frozenset({("", "namespaces"), ("", "services")})
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


class Change:
    """One change seen by an in-sandbox controller; ``object`` is the controller's own copy.

    The copy is made on first use: most controllers skip most changes by their resource or type alone, and the
    stored object it copies never changes, so a late copy is the same copy.
    """

    __slots__ = ("_copy", "_shared", "group", "plural", "type")

    def __init__(self, type: str, group: str, plural: str, object: dict[str, Any]) -> None:
        self.type = type
        self.group = group
        self.plural = plural
        self._shared = object
        self._copy: dict[str, Any] | None = None

    @property
    def object(self) -> dict[str, Any]:
        """The changed object as committed (a private deep copy)."""
        if self._copy is None:
            self._copy = copy.deepcopy(self._shared)
        return self._copy

    def __repr__(self) -> str:
        meta = self._shared.get("metadata") or {}
        return f"Change({self.type} {self.plural}.{self.group} {meta.get('namespace', '')}/{meta.get('name')})"


def _spec_part(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """What counts for ``metadata.generation``: everything but metadata (and status when it is a subresource)."""
    skip = ("metadata", "status") if rt.has_status else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}


def _ident(rt: ResourceType, obj: dict[str, Any]) -> tuple[StorageKey, str, str]:
    meta = obj["metadata"]
    return (rt.key, meta.get("namespace", "") if rt.namespaced else "", meta["name"])


def _same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from resourceVersion and apiVersion (a no-op write is not a change)."""
    ma = {k: v for k, v in a.get("metadata", {}).items() if k != "resourceVersion"}
    mb = {k: v for k, v in b.get("metadata", {}).items() if k != "resourceVersion"}
    if ma != mb:
        return False
    skip = ("metadata", "apiVersion")
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


class Cluster:
    """Reads and writes with Kubernetes semantics; also the API in-sandbox controllers use."""

    def __init__(self, registry: Registry | None = None, store: Store | None = None, cel_rules: bool = True) -> None:
        self.registry = registry or Registry()
        self.store = store or Store()
        # CEL rules cost about 1 ms per HTTPRoute write; benchmarks may turn them off.
        self.cel_rules = cel_rules
        self.cluster_ips = defaults.ClusterIPs()
        # uids of owners deleted with propagationPolicy=Orphan that still wait on their finalizers
        self.orphans: set[str] = set()
        # (storage key, namespace, name) of a custom resource -> the schema that admitted what is stored. Writes
        # in-process (status from in-sandbox controllers, garbage collection) keep the entry: like kube's
        # validation ratcheting, what a write leaves untouched is not checked again.
        self._admitted_by: dict[tuple[StorageKey, str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------ lookups

    def resource(self, group: str, plural: str) -> ResourceType:
        """The resource for (group, plural); 404 when it is not served."""
        rt = self.registry.get(group, plural)
        if rt is None:
            raise StatusError(404, "NotFound", f"the server could not find the requested resource ({plural}.{group})")
        return rt

    def get_object(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """The stored object (shared, do not mutate); 404 when absent."""
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    # ------------------------------------------------------------ writes

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        if not namespace:
            raise bad_request("an empty namespace may not be set during creation")
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise StatusError(403, "Forbidden",
                              f'{rt.qualified} is forbidden: unable to create new content in namespace {namespace} '
                              "because it is being terminated")

    def _check_name(self, rt: ResourceType, name: str) -> None:
        if rt.key in _DNS_LABEL_KINDS:
            if len(name) > 63 or not _LABEL_RE.match(name):
                raise invalid(rt.kind, rt.group, name, [Cause("metadata.name", "FieldValueInvalid",
                              f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                              "alphanumeric characters or '-', and must start and end with an alphanumeric "
                              "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")])
        elif len(name) > 253 or not _SUBDOMAIN_RE.match(name):
            raise invalid(rt.kind, rt.group, name, [Cause("metadata.name", "FieldValueInvalid",
                          f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                          "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                          "character (e.g. 'example.com', regex used for validation is "
                          "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")])

    def _admit(
        self, rt: ResourceType, version: str, obj: dict[str, Any], strict: bool = False,
        old: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Admission: built-in defaults, or schema pruning/defaulting/validation for custom resources and CRDs.

        ``strict`` (``fieldValidation=Strict``, what kubectl sends) refuses unknown fields instead of pruning them.
        """
        name = obj["metadata"].get("name", "")
        if rt.key == CRDS:
            causes = crds.validate_crd(obj)
            if causes:
                raise invalid(rt.kind, rt.group, name, causes)
            return obj
        if not rt.custom:
            if rt.key in defaults.KINDS:
                return defaults.apply(rt.key, dict(obj), old, self.cluster_ips)
            return obj
        schema = rt.schemas.get(version)
        if schema is None:
            return obj
        if strict:
            unknown = unknown_fields(obj, schema, root=True)
            if unknown:
                raise bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict decoding '
                                  "error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
        previous = old if old is not None and self._admitted_by.get(_ident(rt, old)) is schema else None
        admitted, causes = admit(obj, schema, previous)
        if self.cel_rules:
            causes.extend(cel_rules.evaluate_rules(admitted, schema, previous))
        if causes:
            raise invalid(rt.kind, rt.group, name, causes)
        return admitted

    def _check_type(self, rt: ResourceType, version: str, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        expected = rt.api_version(version)
        if obj.get("apiVersion", expected) != expected or obj.get("kind", rt.kind) != rt.kind:
            raise bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version "
                f"({expected}) or kind {obj.get('kind')!r} is not {rt.kind!r}"
            )
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        causes = metadata.check(meta or {})
        if causes:
            raise invalid(rt.kind, rt.group, str((meta or {}).get("name", "")), causes)
        result = dict(obj)
        result["apiVersion"] = expected
        result["kind"] = rt.kind
        result["metadata"] = dict(meta or {})
        return result

    def create_object(
        self, rt: ResourceType, version: str, namespace: str, body: Any, dry_run: bool = False, strict: bool = False
    ) -> dict[str, Any]:
        """POST semantics: name/generateName, namespace checks, admission, server-set metadata."""
        obj = self._check_type(rt, version, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            namespace = namespace or meta.get("namespace", "")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        if meta.get("resourceVersion"):
            # What kube-apiserver answers, e.g. when a controller copies a live object without clearing it.
            raise StatusError(500, "InternalError",
                              "Internal error occurred: resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise invalid(rt.kind, rt.group, "", [Cause("metadata.name", "FieldValueRequired",
                                                             "Required value: name or generateName is required")])
        name = meta["name"]
        self._check_name(rt, name)
        self._check_namespace(rt, namespace)
        if self.store.get(rt.key, namespace, name) is not None:
            raise already_exists(rt.group, rt.plural, name)
        if rt.has_status and rt.key != CRDS:
            obj.pop("status", None)
        obj = self._admit(rt, version, obj, strict)
        meta = obj["metadata"]
        for server_field in _SERVER_FIELDS:
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.has_generation:
            meta["generation"] = 1
        if rt.key == CRDS:
            obj["status"] = crds.accepted_status(obj)
        if dry_run:
            meta["resourceVersion"] = str(self.store.resource_version)
            return obj
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, obj, "ADDED")
        if rt.key == CRDS:
            self.registry.put(crds.resource_type(obj))
        self._remember_schema(rt, version, obj)
        return obj

    def _remember_schema(self, rt: ResourceType, version: str, stored: dict[str, Any]) -> None:
        """Note the schema that admitted a stored custom resource (its next write may reuse what it shares)."""
        schema = rt.schemas.get(version) if rt.custom and rt.key != CRDS else None
        if schema is not None and self.store.get(rt.key, *_ident(rt, stored)[1:]) is stored:
            self._admitted_by[_ident(rt, stored)] = schema

    def update_object(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics: optimistic concurrency, status subresource rules, generation, finalizer release."""
        current = self.get_object(rt, namespace, name)
        obj = self._check_type(rt, version, body)
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                              f"({name})")
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name)
        if subresource == "status":
            new = dict(current)
            new["apiVersion"] = obj["apiVersion"]
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            if rt.has_status:
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
            new_meta = dict(meta)
            for server_field in _SERVER_FIELDS:
                if server_field in current["metadata"]:
                    new_meta[server_field] = current["metadata"][server_field]
                else:
                    new_meta.pop(server_field, None)
            new_meta["name"] = name
            if rt.namespaced:
                new_meta["namespace"] = current["metadata"]["namespace"]
            new["metadata"] = new_meta
        self._check_finalizers(rt, current, new)
        new = self._admit(rt, version, new, strict, current)
        changed_immutable = immutable.check(rt.key, current, new)
        if changed_immutable:
            raise invalid(rt.kind, rt.group, name, changed_immutable)
        stored = self.commit_update(rt, current, new, dry_run)
        if not dry_run:
            self._remember_schema(rt, version, stored)
        return stored

    def _check_finalizers(self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any]) -> None:
        """Once deletion has started, finalizers may only be removed (kube-apiserver's rule)."""
        if not current["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(current["metadata"].get("finalizers") or [])
        if added:
            # Go's %#v of a []string, as kube-apiserver prints it (which also reports this cause twice).
            found = "[]string{" + ", ".join(json.dumps(f) for f in sorted(added)) + "}"
            cause = Cause("metadata.finalizers", "FieldValueForbidden",
                          f"Forbidden: no new finalizers can be added if the object is being deleted, found new "
                          f"finalizers {found}")
            raise invalid(rt.kind, rt.group, current["metadata"]["name"], [cause, cause])

    def commit_update(
        self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """Store ``new`` in place of ``current``: generation, no-op detection, finalizer release, watch event."""
        new = dict(new)
        new["metadata"] = dict(new["metadata"])
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if rt.has_generation and _spec_part(new, rt) != _spec_part(current, rt):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if _same_content(new, current):
            return current
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(rt, new)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, new, "MODIFIED")
        if rt.key == CRDS:
            self.registry.put(crds.resource_type(new))
        return new

    def delete_object(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        propagation: str = "Background",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """DELETE semantics: finalizers only mark, otherwise remove and collect dependents."""
        current = self.get_object(rt, namespace, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise conflict(rt.group, rt.plural, name)
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name)
        if dry_run:
            return current
        if rt.key == NAMESPACES and self._empty_namespace(name):
            return self._terminating(current)
        if current["metadata"].get("finalizers"):
            if current["metadata"].get("deletionTimestamp"):
                return current
            marked = dict(current)
            marked["metadata"] = dict(current["metadata"], deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            if rt.has_generation:
                marked["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
            if propagation == "Orphan":
                gc.remember_orphan(self, current["metadata"]["uid"])
            marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, marked, "MODIFIED")
            return marked
        return self._remove(rt, current, orphan=propagation == "Orphan")

    def begin_graceful_deletion(self, rt: ResourceType, current: dict[str, Any], grace: float) -> dict[str, Any]:
        """Mark ``current`` as being deleted, as kube-apiserver does for a pod deleted with a grace period: it
        stays, with ``deletionTimestamp`` set ``grace`` seconds ahead, until a kubelet deletes it for good."""
        if current["metadata"].get("deletionTimestamp"):
            return current
        marked = dict(current)
        marked["metadata"] = dict(current["metadata"], deletionTimestamp=now(grace),
                                  deletionGracePeriodSeconds=max(0, round(grace)))
        marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, marked, "MODIFIED")
        return marked

    def _remove(self, rt: ResourceType, current: dict[str, Any], orphan: bool = False) -> dict[str, Any]:
        self._admitted_by.pop(_ident(rt, current), None)
        final = dict(current)
        final["metadata"] = dict(current["metadata"], resourceVersion=str(self.store.next_rv()))
        self.store.remove(rt.key, final)
        if rt.key == CRDS:
            self._drop_custom_resources(final)
        gc.collect(self, final["metadata"]["uid"], orphan=orphan)
        if rt.namespaced:
            self._finish_namespace(final["metadata"].get("namespace", ""))
        return final

    def _empty_namespace(self, namespace: str) -> bool:
        """Delete everything in a namespace, as the namespace controller does; True if some objects remain
        (their finalizers hold them)."""
        for rt in self.registry.types():
            if not rt.namespaced:
                continue
            for obj in self.store.items(rt.key, namespace):
                if self.store.get(rt.key, namespace, obj["metadata"]["name"]) is not None:
                    self.delete_object(rt, namespace, obj["metadata"]["name"])
        return self._has_objects(namespace)

    def _has_objects(self, namespace: str) -> bool:
        return any(next(self.store.items(rt.key, namespace), None) is not None
                   for rt in self.registry.types() if rt.namespaced)

    def _terminating(self, ns: dict[str, Any]) -> dict[str, Any]:
        """Mark a namespace Terminating until the objects still in it are gone."""
        if ns["metadata"].get("deletionTimestamp"):
            return ns
        marked = dict(ns, status={"phase": "Terminating"})
        marked["metadata"] = dict(ns["metadata"], deletionTimestamp=now(), resourceVersion=str(self.store.next_rv()))
        self.store.put(NAMESPACES, marked, "MODIFIED")
        return marked

    def _finish_namespace(self, namespace: str) -> None:
        """Remove a Terminating namespace once its last object is gone."""
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is not None and ns["metadata"].get("deletionTimestamp") and not self._has_objects(namespace):
            if ns["metadata"].get("finalizers"):
                return
            self._remove(self.resource("", "namespaces"), ns)

    def _drop_custom_resources(self, crd: dict[str, Any]) -> None:
        rt = self.registry.get(crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if rt is None or not rt.custom:
            return
        for obj in self.store.items(rt.key):
            cleared = dict(obj)
            cleared["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "finalizers"}
            self._remove(rt, cleared)
        self.registry.remove(rt.key)

    # ------------------------------------------------------------ in-process API (SandboxController)

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of all objects of a resource, in one namespace or all."""
        return [copy.deepcopy(o) for o in self.store.items((group, plural), namespace or None)]

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of one object, or None."""
        obj = self.store.get((group, plural), namespace or "", name)
        return None if obj is None else copy.deepcopy(obj)

    async def changes(self, resources: Iterable[tuple[str, str]] | None = None) -> AsyncIterator[Change]:
        """Every change from the moment of subscribing, as a controller's watch sees it.

        ``resources`` limits the stream to some (group, plural) pairs, which spares copying the rest.
        """
        wanted = None if resources is None else frozenset(resources)
        sub = self.store.subscribe(None)
        try:
            while True:
                event = await sub.get()
                if event is None:
                    if sub.overflowed:
                        log.warning("in-sandbox controller fell too far behind; its change stream ended")
                    return
                if wanted is None or event.key in wanted:
                    yield Change(event.type, event.key[0], event.key[1], event.obj)
        finally:
            sub.close()

    def subscribe_events(self) -> AsyncIterator[Event]:
        """Raw shared events (no copies) for in-sandbox controllers that only read them."""
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        sub = self.store.subscribe(None)
        try:
            while True:
                event = await sub.get()
                if event is None:
                    return
                yield event
        finally:
            sub.close()

    def _in_process(self, group: str, plural: str, obj: dict[str, Any] | None = None) -> tuple[ResourceType, str]:
        rt = self.resource(group, plural)
        version = rt.versions[0]
        if obj and obj.get("apiVersion"):
            version = obj["apiVersion"].rpartition("/")[2]
        return rt, version

    async def create(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object (namespace from ``metadata.namespace``); returns a copy of what was stored."""
        rt, version = self._in_process(group, plural, obj)
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        return copy.deepcopy(self.create_object(rt, version, namespace, copy.deepcopy(obj)))

    async def update(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object (conflict-checked when it carries a resourceVersion)."""
        rt, version = self._in_process(group, plural, obj)
        meta = obj.get("metadata") or {}
        return copy.deepcopy(
            self.update_object(rt, version, meta.get("namespace", ""), meta.get("name", ""), copy.deepcopy(obj))
        )

    async def patch(
        self, group: str, plural: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the main resource."""
        rt, version = self._in_process(group, plural)
        current = self.get_object(rt, namespace or "", name)
        patched = merge_patch(current, patch)
        return copy.deepcopy(self.update_object(rt, version, namespace or "", name, patched))

    async def patch_status(
        self, group: str, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge ``status`` into the object's status (a controller's status write); 404 StatusError when gone."""
        rt, _ = self._in_process(group, plural)
        current = self.get_object(rt, namespace or "", name)
        new = dict(current)
        new["status"] = merge_patch(current.get("status") or {}, status)
        return copy.deepcopy(self.commit_update(rt, current, new))

    async def delete(
        self, group: str, plural: str, namespace: str | None, name: str, propagation: str = "Background"
    ) -> dict[str, Any]:
        """Delete an object (finalizers and garbage collection apply)."""
        rt, _ = self._in_process(group, plural)
        return copy.deepcopy(self.delete_object(rt, namespace or "", name, propagation))
