"""The aiohttp application: Kubernetes API paths, discovery, watch streams, faults and counters endpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from flaggerpy.log import get_logger
from flaggerpy.sandbox.apiserver import apply, jsonio, openapi, protobuf, tables
from flaggerpy.sandbox.apiserver.authz import Authorizer
from flaggerpy.sandbox.apiserver.cluster import Cluster
from flaggerpy.sandbox.apiserver.errors import (
    Cause,
    StatusError,
    bad_request,
    conflict,
    invalid,
    method_not_allowed,
    not_found,
    unsupported_media_type,
)
from flaggerpy.sandbox.apiserver.faults import Counters, Faults
from flaggerpy.sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge
from flaggerpy.sandbox.apiserver.registry import ResourceType
from flaggerpy.sandbox.apiserver.selectors import CUSTOM_RESOURCE_FIELDS, matcher
from flaggerpy.sandbox.apiserver.store import Event, Subscription, encode

log = get_logger("flaggerpy.sandbox.server")
JSON = "application/json"
KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-flaggerpy-sandbox", "gitCommit": "",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
                "compiler": "gc", "platform": "linux/amd64"}
# libyaml's loader is ten times faster than the pure-Python one when PyYAML was built with it.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FAULT_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


@dataclass
class ServerSettings:
    """Tunables of the API server; tests shorten them."""

    bookmark_interval: float = 5.0
    """Seconds between BOOKMARK events on watches that ask for them."""
    idle_check_interval: float = 5.0
    """Seconds between checks that an idle watch's client is still connected."""
    default_watch_timeout: float = 1800.0
    """How long a watch without ``timeoutSeconds`` lasts (kube-apiserver picks 30-60 minutes)."""
    watch_batch_window: float = 0.0
    """Seconds a watch waits after a write before the next one, so that events following closely share one send
    (0: write each wake-up's events at once)."""
    max_request_bytes: int = 3 * 1024 * 1024
    """The largest request body accepted (kube-apiserver's limit for resource writes); larger ones get 413."""


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def item(self) -> str:
        """The object name (item verbs only reach here with one)."""
        if self.name is None:
            raise bad_request("this verb needs an object name in the URL")
        return self.name

    @property
    def counter_name(self) -> str:
        """``plural.group[/sub]``, the resource name counters and fault rules use."""
        return self.rt.qualified + (f"/{self.subresource}" if self.subresource else "")


def _respond(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type=JSON)


def _status_response(err: StatusError) -> web.Response:
    return _respond(err.to_status(), err.code)


def _resource_not_found() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource")


def _with_version(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    return obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}


class ApiServer:
    """Routes requests to the cluster with Kubernetes' URL layout and wire formats."""

    def __init__(self, cluster: Cluster, faults: Faults, counters: Counters, settings: ServerSettings,
                 authz: Authorizer | None = None) -> None:
        self.cluster = cluster
        self.authz = authz
        self.faults = faults
        self.counters = counters
        self.settings = settings
        self._watches: set[Subscription] = set()
        faults.on_drop(self.drop_watches)

    @property
    def open_watches(self) -> int:
        """How many watch streams are being served now."""
        return len(self._watches)

    def drop_watches(self) -> None:
        """End every open watch stream."""
        for sub in list(self._watches):
            sub.close()

    def routes(self) -> list[web.RouteDef]:
        """The API's routes (sandbox control endpoints included)."""
        return [
            web.get("/version", self._version),
            web.get("/healthz", self._ok),
            web.get("/livez", self._ok),
            web.get("/readyz", self._ok),
            web.get("/openapi/v3", self._openapi_root),
            web.get("/openapi/v3/{gv:.*}", self._openapi_gv),
            web.get("/sandbox/faults", self._get_faults),
            web.put("/sandbox/faults", self._set_faults),
            web.post("/sandbox/faults", self._set_faults),
            web.delete("/sandbox/faults", self._clear_faults),
            web.get("/sandbox/counters", self._get_counters),
            web.delete("/sandbox/counters", self._reset_counters),
            web.route("*", "/api", self._api),
            web.route("*", "/api/{tail:.*}", self._api),
            web.route("*", "/apis", self._api),
            web.route("*", "/apis/{tail:.*}", self._api),
        ]

    # ------------------------------------------------------------ small endpoints

    async def _version(self, request: web.Request) -> web.Response:
        return _respond(KUBE_VERSION)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return _respond(openapi.root(self.cluster.registry))

    async def _openapi_gv(self, request: web.Request) -> web.Response:
        doc = openapi.group_version(self.cluster.registry, request.match_info["gv"])
        if doc is None:
            return _status_response(_resource_not_found())
        return _respond(doc)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _respond(self.faults.to_dict())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            return _status_response(bad_request(str(exc)))
        return _respond(self.faults.to_dict())

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return _respond(self.faults.to_dict())

    async def _get_counters(self, request: web.Request) -> web.Response:
        return _respond(self.counters.snapshot())

    async def _reset_counters(self, request: web.Request) -> web.Response:
        self.counters.reset()
        return _respond({})

    # ------------------------------------------------------------ API dispatch

    async def _api(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except StatusError as err:
            return _status_response(err)
        except RecursionError:
            # Python's recursion limit, not kube-apiserver's nesting limit (10000, Go's encoding/json) is reached.
            return _status_response(bad_request(
                "the object is nested deeper than the sandbox can process (about 900 levels; kube-apiserver "
                "accepts up to 10000)"))
        except Exception as exc:
            # A bug must not take the server down or answer with a non-Status body clients cannot parse.
            log.exception("request failed", method=request.method, path=request.path)
            return _status_response(StatusError(500, "InternalError", f"internal error: {exc!r}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        registry = self.cluster.registry
        if parts[0] == "api":
            if len(parts) == 1:
                return _respond({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return _respond(registry.api_group_list())
            if len(parts) == 2:
                group_doc = registry.api_group(parts[1])
                if group_doc is None:
                    raise _resource_not_found()
                return _respond(group_doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            listing = registry.resource_list(group, version)
            if listing is None:
                raise _resource_not_found()
            return _respond(listing)
        target = self._target(group, version, rest)
        return await self._serve(request, target)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _resource_not_found()
        rt = self.cluster.registry.resolve(group, version, rest[0])
        if rt is None:
            raise _resource_not_found()
        if namespace is not None and not rt.namespaced:
            raise _resource_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise _resource_not_found()
        return Target(rt, version, namespace if rt.namespaced else None, name, sub)

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        verb = self._verb(request, target)
        resource = target.counter_name
        self.counters.inc(verb, resource)
        if self.authz is not None:
            self.authz.check(request.headers.get("Authorization"), verb, target.rt, target.namespace, target.name,
                             target.subresource)
        delay = self.faults.delay_for(verb, resource)
        if delay:
            await asyncio.sleep(delay)
        code = self.faults.error_for(verb, resource)
        if code is not None:
            raise StatusError(code, _FAULT_REASONS.get(code, "InternalError"),
                              f"injected fault: {verb} {resource} failed with {code}")
        if self.faults.conflict_for(verb, resource):
            raise conflict(target.rt.group, target.rt.plural, target.name or "")
        handler = {
            "get": self._get, "list": self._list, "watch": self._watch, "create": self._create,
            "update": self._update, "patch": self._patch, "delete": self._delete,
            "deletecollection": self._delete_collection,
        }[verb]
        return await handler(request, target)

    def _verb(self, request: web.Request, target: Target) -> str:
        method = request.method
        if target.name is None:
            if method == "GET":
                return "watch" if _flag(request.query.get("watch")) else "list"
            if method == "POST":
                return "create"
            if method == "DELETE":
                return "deletecollection"
        else:
            if method == "GET":
                return "get"
            if method == "PUT":
                return "update"
            if method == "PATCH":
                return "patch"
            if method == "DELETE" and target.subresource is None:
                return "delete"
        raise method_not_allowed(f"the server does not allow this method on the requested resource ({method})")

    # ------------------------------------------------------------ verbs

    async def _body(self, request: web.Request) -> Any:
        limit = self.settings.max_request_bytes
        too_large = StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        if request.content_type == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(raw)
        if not raw:
            return {}
        try:
            if request.content_type == "application/apply-patch+yaml":
                return yaml.load(raw, Loader=_YAML_LOADER)
            return jsonio.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the request body is not valid {request.content_type}: {exc}") from exc

    def _api_version(self, target: Target) -> str:
        return target.rt.api_version(target.version)

    def _out(self, target: Target, obj: dict[str, Any], status: int = 200) -> web.Response:
        if target.subresource == "scale":
            return _respond(_scale_of(obj), status)
        return _respond(_with_version(obj, self._api_version(target)), status)

    async def _get(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = self.cluster.get_object(target.rt, target.namespace or "", target.item)
        if tables.wants_table(request.headers.get("Accept", "")):
            return _respond(tables.table(target.rt, target.version, [obj], self.cluster.store.resource_version))
        return self._out(target, obj)

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        match = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"),
                        CUSTOM_RESOURCE_FIELDS if target.rt.custom else None)
        items = self.cluster.store.items(target.rt.key, target.namespace)
        selected = [o for o in items if match is None or match(o)]
        rv = str(self.cluster.store.resource_version)
        meta: dict[str, Any] = {"resourceVersion": rv}
        limit = _int_param(request, "limit")
        token = request.query.get("continue")
        if limit or token:
            selected, meta = _paginate(selected, limit, token, rv)
        if tables.wants_table(request.headers.get("Accept", "")):
            return _respond(tables.table(target.rt, target.version, selected, rv, meta.get("continue")))
        api_version = self._api_version(target)
        return _respond({
            "kind": f"{target.rt.kind}List",
            "apiVersion": api_version,
            "metadata": meta,
            "items": [_with_version(o, api_version) for o in selected],
        })

    def _track(self, request: web.Request, target: Target, old: dict[str, Any] | None, new: Any) -> Any:
        """``new`` with the managedFields an update by this request's field manager leaves."""
        if target.subresource is not None or not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            return new
        manager = apply.field_manager(request.query, request.headers.get("User-Agent", ""))
        managed = apply.record_update(old, new, manager, self._api_version(target))
        return dict(new, metadata=dict(new["metadata"], managedFields=managed))

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = self._track(request, target, None, await self._body(request))
        obj = self.cluster.create_object(target.rt, target.version, target.namespace or "", body, _dry(request),
                                         _strict(request))
        return self._out(target, obj, 201)

    async def _update(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = await self._body(request)
        if target.subresource == "scale":
            return self._set_scale(request, target, body)
        rt = target.rt
        if rt.custom and isinstance(body, dict) and not (body.get("metadata") or {}).get("resourceVersion"):
            # Custom resources allow no unconditional update (built-in kinds mostly do): kube-apiserver's 422.
            raise invalid(rt.plural, rt.group, target.item or "", [Cause(
                "metadata.resourceVersion", "FieldValueInvalid", "Invalid value: 0: must be specified for an update")])
        current = self.cluster.store.get(rt.key, (target.namespace or "") if rt.namespaced else "", target.item)
        body = self._track(request, target, current, body)
        obj = self.cluster.update_object(target.rt, target.version, target.namespace or "", target.item, body,
                                         target.subresource, _dry(request), _strict(request))
        return self._out(target, obj)

    async def _patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        content_type = request.content_type
        body = await self._body(request)
        rt, namespace = target.rt, target.namespace or ""
        current = self.cluster.store.get(rt.key, namespace if rt.namespaced else "", target.item)
        applying = content_type == "application/apply-patch+yaml"
        manager = request.query.get("fieldManager", "")
        if applying:
            if not isinstance(body, dict):
                raise bad_request("an apply patch must be a YAML or JSON object")
            if isinstance(body.get("metadata"), dict):
                body = dict(body, metadata={k: v for k, v in body["metadata"].items() if k != "managedFields"})
            if not manager:
                raise invalid("PatchOptions", "meta.k8s.io", "", [Cause(
                    "fieldManager", "FieldValueRequired", "Required value: is required for apply patch")])
            if current is None:
                body = apply.applied_on_create(body, manager, self._api_version(target))
                obj = self.cluster.create_object(rt, target.version, namespace, body, _dry(request),
                                                 _strict(request))
                return self._out(target, obj, 201)
        if current is None:
            raise not_found(rt.group, rt.plural, target.item)
        base: dict[str, Any] = _scale_of(current) if target.subresource == "scale" else current
        if content_type == "application/json-patch+json":
            patched = json_patch(base, body)
        elif content_type == "application/merge-patch+json":
            patched = merge_patch(base, body)
        elif content_type in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            if rt.custom and content_type != "application/apply-patch+yaml":
                raise StatusError(415, "UnsupportedMediaType",
                                  "the body of the request was in an unknown format - accepted media types "
                                  "include: application/json-patch+json, application/merge-patch+json, "
                                  "application/apply-patch+yaml")
            patched = merge_patch(base, body) if rt.custom else strategic_merge(base, body)
        else:
            raise unsupported_media_type(content_type)
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        if target.subresource == "scale":
            return self._set_scale(request, target, patched)
        if applying and isinstance(patched.get("metadata"), dict):
            # A new dict: the patched object still shares unpatched parts with the stored one.
            patched["metadata"] = {k: v for k, v in patched["metadata"].items() if k != "resourceVersion"}
            if target.subresource is None:
                patched = apply.apply(current, body, patched, manager, _flag(request.query.get("force")),
                                      self._api_version(target), rt.kind)
        elif not applying:
            patched = self._track(request, target, current, patched)
        obj = self.cluster.update_object(rt, target.version, namespace, target.item, patched,
                                         target.subresource, _dry(request), _strict(request))
        return self._out(target, obj)

    def _set_scale(self, request: web.Request, target: Target, scale: Any) -> web.Response:
        spec = scale.get("spec") if isinstance(scale, dict) else None
        replicas = spec.get("replicas") if isinstance(spec, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise StatusError(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}: must be greater than "
                                              "or equal to 0")
        current = self.cluster.get_object(target.rt, target.namespace or "", target.item)
        scale_meta = scale.get("metadata")
        sent_rv = scale_meta.get("resourceVersion") if isinstance(scale_meta, dict) else None
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise conflict(target.rt.group, target.rt.plural, target.item)
        updated = dict(current, spec=dict(current.get("spec") or {}, replicas=replicas))
        manager = apply.field_manager(request.query, request.headers.get("User-Agent", ""))
        managed = apply.record_update(current, updated, manager, self._api_version(target), subresource="scale")
        updated["metadata"] = dict(updated["metadata"], managedFields=managed)
        obj = self.cluster.update_object(target.rt, target.version, target.namespace or "", target.item, updated,
                                         None, _dry(request))
        return self._out(target, obj)

    async def _delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await self._body(request)
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}": supported values: '
                              '"Background", "Foreground", "Orphan"')
        if options.get("orphanDependents") is True:
            propagation = "Orphan"
        preconditions = options.get("preconditions")
        if preconditions is not None and not isinstance(preconditions, dict):
            raise bad_request("preconditions: must be an object with uid and/or resourceVersion")
        dry = _dry(request) or bool(options.get("dryRun"))
        obj = self.cluster.delete_object(target.rt, target.namespace or "", target.item, propagation,
                                         preconditions, dry)
        # kube-apiserver answers 200 even when finalizers delay the removal (202 only for an explicit
        # orphanDependents=false, which clients no longer send): the object while it is being finalized, a
        # Success Status once it is gone.
        rt = target.rt
        if dry or self.cluster.store.get(rt.key, target.namespace or "", target.item or "") is not None:
            return self._out(target, obj)
        details: dict[str, Any] = {"name": target.item, "kind": rt.plural, "uid": obj["metadata"].get("uid", "")}
        if rt.group:
            details = {"name": target.item, "group": rt.group, "kind": rt.plural, "uid": details["uid"]}
        return _respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": details})

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        match = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"),
                        CUSTOM_RESOURCE_FIELDS if target.rt.custom else None)
        deleted = []
        for obj in self.cluster.store.items(target.rt.key, target.namespace):
            if match is None or match(obj):
                meta = obj["metadata"]
                with contextlib.suppress(StatusError):
                    deleted.append(self.cluster.delete_object(target.rt, meta.get("namespace", ""), meta["name"],
                                                              dry_run=_dry(request)))
        api_version = self._api_version(target)
        return _respond({"kind": f"{target.rt.kind}List", "apiVersion": api_version,
                         "metadata": {"resourceVersion": str(self.cluster.store.resource_version)},
                         "items": [_with_version(o, api_version) for o in deleted]})

    # ------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        watch = WatchStream(self, request, target)
        return await watch.run()


class WatchStream:
    """One watch request: initial events or replay, then live events, bookmarks, timeout and drops."""

    def __init__(self, server: ApiServer, request: web.Request, target: Target) -> None:
        self.server = server
        self.request = request
        self.target = target
        self.api_version = target.rt.api_version(target.version)
        self.match = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"),
                        CUSTOM_RESOURCE_FIELDS if target.rt.custom else None)
        self.bookmarks = _flag(request.query.get("allowWatchBookmarks"))
        timeout = _int_param(request, "timeoutSeconds")
        self.timeout = float(timeout) if timeout else server.settings.default_watch_timeout
        self.last_rv = 0
        self.expired = False
        self.as_table = tables.wants_table(request.headers.get("Accept", ""))

    def _line(self, event_type: str, obj: dict[str, Any], event: Event | None = None) -> bytes:
        """One watch line; as a one-row Table when kubectl asked for tables."""
        if self.as_table:
            rows = tables.table(self.target.rt, self.target.version, [obj], obj["metadata"]["resourceVersion"])
            return encode({"type": event_type, "object": rows}) + b"\n"
        if event is not None:
            return event.encode(self.api_version, event_type)
        return encode({"type": event_type, "object": _with_version(obj, self.api_version)}) + b"\n"

    def _translate(self, event: Event) -> bytes | None:
        """The line to send for an event, or None when this watch must not see it."""
        obj = event.obj
        namespace = self.target.namespace
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return None
        if self.match is None:
            return self._line(event.type, obj, event)
        now_matches = self.match(obj)
        if event.type == "MODIFIED":
            was_matching = event.old is not None and self.match(event.old)
            if now_matches and not was_matching:
                return self._line("ADDED", obj, event)
            if was_matching and not now_matches:
                return self._line("DELETED", obj, event)
        return self._line(event.type, obj, event) if now_matches else None

    async def run(self) -> web.StreamResponse:
        """Serve the stream until the timeout, a drop, an overflow or the client going away."""
        # Invalid options are refused before the stream starts, with their HTTP status (a 410 comes in-stream).
        refused = self._check_options()
        if refused is not None:
            raise refused
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        server = self.server
        store = server.cluster.store
        if server.faults.take_gone(self.target.rt.qualified):
            await self._write_error(response, StatusError(410, "Expired", "too old resource version: injected"))
            return response
        sub = store.subscribe(self.target.rt.key)
        server._watches.add(sub)
        try:
            initial = self._initial(store)
            if isinstance(initial, StatusError):
                await self._write_error(response, initial)
                return response
            if initial:
                await response.write(b"".join(initial))
            await self._stream(response, sub)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            server._watches.discard(sub)
            sub.close()
        return response

    def _initial(self, store: Any) -> list[bytes] | StatusError:
        rv_param = self.request.query.get("resourceVersion")
        if _flag(self.request.query.get("sendInitialEvents")):
            return self._initial_events(store)
        if not rv_param or rv_param == "0":
            self.last_rv = store.resource_version
            lines = []
            for obj in store.items(self.target.rt.key, self.target.namespace):
                if self.match is None or self.match(obj):
                    lines.append(self._line("ADDED", obj))
            return lines
        try:
            start = int(rv_param)
        except ValueError:
            return bad_request(f"resourceVersion: invalid value {rv_param!r}")
        try:
            events = store.events_after(self.target.rt.key, start)
        except StatusError as err:
            return err
        self.last_rv = max(start, events[-1].rv if events else start)
        return [line for e in events if (line := self._translate(e)) is not None]

    def _check_options(self) -> StatusError | None:
        """The ListOptions kube-apiserver refuses for a watch (422), or None."""
        query = self.request.query
        if not _flag(query.get("sendInitialEvents")):
            return None
        if query.get("resourceVersionMatch") != "NotOlderThan":
            return invalid("ListOptions", "meta.k8s.io", "", [Cause(
                "resourceVersionMatch", "FieldValueForbidden",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        if not self.bookmarks:
            return invalid("ListOptions", "meta.k8s.io", "", [Cause(
                "allowWatchBookmarks", "FieldValueForbidden",
                "Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is set")])
        return None

    def _initial_events(self, store: Any) -> list[bytes] | StatusError:
        """A streaming list (client-go's WatchList, on by default since 1.35): every current object as ADDED, then
        a BOOKMARK annotated ``k8s.io/initial-events-end`` at the list's resourceVersion, then live events."""
        query = self.request.query
        rv_param = query.get("resourceVersion") or "0"
        if not rv_param.isdigit():
            return bad_request(f"resourceVersion: invalid value {rv_param!r}")
        self.last_rv = store.resource_version
        lines = [self._line("ADDED", obj) for obj in store.items(self.target.rt.key, self.target.namespace)
                 if self.match is None or self.match(obj)]
        end = {"kind": self.target.rt.kind, "apiVersion": self.api_version,
               "metadata": {"resourceVersion": str(self.last_rv),
                            "annotations": {"k8s.io/initial-events-end": "true"}}}
        lines.append(encode({"type": "BOOKMARK", "object": end}) + b"\n")
        return lines

    async def _write_error(self, response: web.StreamResponse, err: StatusError) -> None:
        with contextlib.suppress(ConnectionResetError):
            await response.write(encode({"type": "ERROR", "object": err.to_status()}) + b"\n")

    async def _stream(self, response: web.StreamResponse, sub: Subscription) -> None:
        settings = self.server.settings
        loop = asyncio.get_running_loop()
        tick = settings.bookmark_interval if self.bookmarks else settings.idle_check_interval
        window = settings.watch_batch_window
        # Timers wake the wait instead of a timeout on each wait: a busy watch then costs no timer per event.
        ticker = _Ticker(loop, tick, sub)
        expiry = loop.call_later(self.timeout, self._expire, sub)
        last_write = -window
        try:
            while True:
                await sub.wait()
                if self.expired:
                    return
                if len(sub) and window > 0:
                    # Events that follow within the window join this write: one send for a burst.
                    pause = last_write + window - loop.time()
                    if pause > 0:
                        await asyncio.sleep(pause)
                lines = [line for event in sub.take() if (line := self._next_line(event)) is not None]
                if ticker.take():
                    if not lines and self.bookmarks and not ticker.wrote_since_last:
                        lines.append(self._bookmark())
                    elif not lines and not self.bookmarks and (
                            self.request.transport is None or self.request.transport.is_closing()):
                        return
                    ticker.wrote_since_last = False
                if lines:
                    await response.write(b"".join(lines))
                    last_write = loop.time()
                    ticker.wrote_since_last = True
                if sub.closed and not len(sub):
                    if sub.overflowed:
                        await self._write_error(response, StatusError(410, "Expired", "watch fell too far behind"))
                    return
        finally:
            ticker.cancel()
            expiry.cancel()

    def _expire(self, sub: Subscription) -> None:
        self.expired = True
        sub.wake()

    def _next_line(self, event: Event) -> bytes | None:
        """The line for a live event, or None for one already sent in the initial replay or not for this watch."""
        if event.rv <= self.last_rv:
            return None
        self.last_rv = event.rv
        return self._translate(event)

    def _bookmark(self) -> bytes:
        """A BOOKMARK at the store's newest resourceVersion: every event before it has been taken and sent."""
        bookmark = {"kind": self.target.rt.kind, "apiVersion": self.api_version,
                    "metadata": {"resourceVersion": str(self.server.cluster.store.resource_version)}}
        return encode({"type": "BOOKMARK", "object": bookmark}) + b"\n"


class _Ticker:
    """A repeating timer that wakes a watch's wait every ``interval`` seconds and remembers that it did."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, sub: Subscription) -> None:
        self.wrote_since_last = False
        self._loop = loop
        self._interval = interval
        self._sub = sub
        self._due = False
        self._handle = loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        self._due = True
        self._sub.wake()
        self._handle = self._loop.call_later(self._interval, self._fire)

    def take(self) -> bool:
        """Whether a tick came since the last call."""
        due, self._due = self._due, False
        return due

    def cancel(self) -> None:
        """Stop ticking."""
        self._handle.cancel()


def _int_param(request: web.Request, name: str) -> int:
    """A non-negative integer query parameter (0 when absent); 400 naming it otherwise."""
    text = request.query.get(name)
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name}: invalid value {text!r}: must be a non-negative integer") from None
    if value < 0:
        raise bad_request(f"{name}: invalid value {text!r}: must be a non-negative integer")
    return value


def _flag(value: str | None) -> bool:
    """A boolean query parameter, parsed like Go's strconv.ParseBool (clients send "true", "True", "1")."""
    return value is not None and value in ("1", "t", "T", "true", "TRUE", "True")


def _strict(request: web.Request) -> bool:
    """``fieldValidation=Strict``: unknown fields of custom resources are errors, not silently pruned."""
    return request.query.get("fieldValidation") == "Strict"


def _dry(request: web.Request) -> bool:
    return "dryRun" in request.query and request.query.get("dryRun") != ""


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }


def _paginate(
    items: list[dict[str, Any]], limit: int, token: str | None, rv: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Order by (namespace, name) and cut a page; the continue token holds the last key served."""
    def key(o: dict[str, Any]) -> tuple[str, str]:
        return (o["metadata"].get("namespace", ""), o["metadata"]["name"])

    ordered = sorted(items, key=key)
    if token:
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
        except (ValueError, TypeError) as exc:
            raise bad_request(f"continue: invalid token {token!r}") from exc
        ordered = [o for o in ordered if key(o) > after]
    meta: dict[str, Any] = {"resourceVersion": rv}
    if limit and len(ordered) > limit:
        page = ordered[:limit]
        meta["continue"] = base64.urlsafe_b64encode(json.dumps(list(key(page[-1]))).encode()).decode()
        meta["remainingItemCount"] = len(ordered) - limit
        return page, meta
    return ordered, meta


def build_app(
    cluster: Cluster, faults: Faults, counters: Counters, settings: ServerSettings,
    extra_routes: list[web.RouteDef] | None = None, authz: Authorizer | None = None,
) -> tuple[web.Application, ApiServer]:
    """The aiohttp application serving ``cluster`` (``authz``: registered users checked by RBAC)."""
    app = web.Application(client_max_size=settings.max_request_bytes)
    server = ApiServer(cluster, faults, counters, settings, authz)
    app.add_routes(list(extra_routes or []) + server.routes())
    return app, server
