"""One API client per process and typed resource handles over plain dicts.

kubernetes-asyncio supplies configuration and authentication (kubeconfig, in-cluster, token refresh). Objects stay
plain dicts because its generated models cost several times the CPU of a raw request. Request/response calls go
over :mod:`flaggerpy.kube.http` (a third of the CPU of an aiohttp request), watches and proxied configurations over
kubernetes-asyncio's aiohttp session; bodies are JSON through :mod:`flaggerpy.kube.jsonio`. A request only sets up
tenacity once its first attempt failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from yarl import URL

from flaggerpy.kube import jsonio
from flaggerpy.kube.errors import ApiError, ConfigError, NotLeading, Unavailable, error_from_status
from flaggerpy.kube.http import Http11Client, TransportError
from flaggerpy.kube.ratelimit import TokenBucket
from flaggerpy.kube.settings import ClientSettings
from flaggerpy.log import get_logger

log = get_logger(__name__)

Obj = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]
RequestObserver = Callable[[str, str, int, float], None]
"""``on_request(verb, resource, status, seconds)``: called once per HTTP attempt; status 0 = no answer."""
WriteFence = Callable[[str], bool]
"""``fence(resource)``: whether a write to ``resource`` may be sent now (see :meth:`KubeClient.set_write_fence`)."""
UndecodableObserver = Callable[[str, int], None]
"""``on_undecodable(resource, count)``: objects of ``resource`` skipped because they could not be decoded."""

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


@dataclass(frozen=True)
class Resource:
    """A resource type the API serves: ``group`` "" is the core group (``/api/v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of objects of this type (``v1``, ``apps/v1``)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object (and its subresource) when ``name`` is given."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_retryable(exc: BaseException) -> bool:
    return (isinstance(exc, ApiError) and not isinstance(exc, NotLeading)
            and (exc.status == 0 or exc.status == 429 or exc.status >= 500))


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Drop unset parameters and spell booleans the way the API server documents them."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        out.append((key, ("true" if value else "false") if isinstance(value, bool) else str(value)))
    return out


def _namespace_of(resource: Resource, obj: Obj) -> str | None:
    namespace = (obj.get("metadata") or {}).get("namespace")
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource}: metadata.namespace is required for a namespaced object")
    return namespace if resource.namespaced else None


def _name_of(resource: Resource, obj: Obj) -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ValueError(f"{resource}: metadata.name is required")
    return str(name)


def _check_namespace(resource: Resource, namespace: str | None) -> None:
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource} is namespaced: a namespace is required")


def _kubeconfig_path(explicit: str | None) -> str:
    path = explicit or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    if not Path(path).is_file():
        raise ConfigError(f"kubeconfig {path!r} does not exist (pass --kubeconfig or run in a pod)")
    return path


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, ...) asks for to reach ``url``, if any."""
    parts = urlsplit(url)
    proxies = getproxies()
    if not proxies or proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or None


def runs_in_cluster(kubeconfig: str | None = None) -> bool:
    """Whether :func:`load_configuration` would use the pod's service account (no kubeconfig given, in a pod)."""
    return kubeconfig is None and bool(os.environ.get(_IN_CLUSTER_ENV))


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """Build a client Configuration the way kubectl does.

    An explicit ``kubeconfig`` wins; otherwise in-cluster service-account config when running in a pod; otherwise
    ``$KUBECONFIG`` (first entry) or ``~/.kube/config``. Raises :class:`ConfigError` naming what was missing.
    """
    cfg = Configuration()
    try:
        if runs_in_cluster(kubeconfig):
            load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # untyped upstream
            return cfg
        path = _kubeconfig_path(kubeconfig)
        await load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
    except ConfigException as exc:
        raise ConfigError(f"cannot load cluster configuration: {exc}") from exc
    return cfg


@dataclass(frozen=True)
class _Transport:
    """What every request needs from the ApiClient, looked up once instead of per request."""

    session: aiohttp.ClientSession
    host: str
    headers: Mapping[str, str]
    extra: Mapping[str, Any]
    """aiohttp keyword arguments the configuration asks for (proxy, proxy headers, TLS server name)."""
    timeout: aiohttp.ClientTimeout
    configuration: Configuration
    http: Http11Client | None
    """The plain client for request/response calls; None when a proxy is configured (aiohttp handles those)."""

    @classmethod
    def of(cls, api: ApiClient, settings: ClientSettings, timeout: aiohttp.ClientTimeout) -> _Transport:
        """Read the session, host, fixed headers and proxy/TLS options off ``api``."""
        rest = api.rest_client
        cfg = api.configuration
        extra: dict[str, Any] = {}
        if rest.proxy:
            extra["proxy"] = rest.proxy
        if rest.proxy_headers:
            extra["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            extra["server_hostname"] = rest.server_hostname
        headers = {**api.default_headers, "Accept": "application/json"}
        host = _host(cfg)
        http = None
        if not rest.proxy:
            http = Http11Client(
                host,
                ssl_context=_ssl_context(cfg) if host.startswith("https:") else None,
                server_hostname=rest.server_hostname,
                limit=settings.pool_size,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
            )
        return cls(rest.pool_manager, host, headers, extra, timeout, cfg, http)

    async def bearer_token(self) -> str | None:
        """The Authorization header value, as kubernetes-asyncio's auth settings give it.

        A refresh hook (exec plugins, in-cluster token rotation) is asked every time, as the ApiClient would; a
        static token is read from the configuration each time, so a token set after opening is used too.
        """
        cfg = self.configuration
        if "BearerToken" not in cfg.api_key:
            return None
        if cfg.refresh_api_key_hook is not None:
            return await cfg.get_api_key_with_prefix("BearerToken")
        prefix = cfg.api_key_prefix.get("BearerToken")
        key = cfg.api_key["BearerToken"]
        return f"{prefix} {key}" if prefix and key else key or None


def _host(cfg: Configuration) -> str:
    """The API server URL; a configuration without one cannot be used (kubernetes-asyncio types it optional)."""
    if not cfg.host:
        raise ConfigError("the cluster configuration names no API server (host)")
    return cfg.host


def _ssl_context(cfg: Configuration) -> ssl.SSLContext:
    """The TLS context kubernetes-asyncio's REST client builds from the same configuration."""
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if getattr(cfg, "disable_strict_ssl_verification", False):
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


class KubeClient:
    """The process's connection to the API server. Use as ``async with KubeClient(kubeconfig=...) as kube:``.

    Either pass a ready ``api_client`` or let :meth:`open` build one from ``kubeconfig``/``context`` (or in-cluster
    config). Closing the client closes the aiohttp session.
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        settings: ClientSettings | None = None,
        api_client: ApiClient | None = None,
        on_request: RequestObserver | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        self._kubeconfig = kubeconfig
        self._context = context
        self._api = api_client
        self._observers: list[RequestObserver] = [on_request] if on_request else []
        self._undecodable_observers: list[UndecodableObserver] = []
        self._undecodable_logged: set[str] = set()
        self._fence: WriteFence | None = None
        self._wire: _Transport | None = None
        limit = self.settings.token_bucket()
        self._bucket = TokenBucket(*limit) if limit is not None else None

    async def open(self) -> KubeClient:
        """Load configuration and create the shared ApiClient (idempotent)."""
        if self._api is None:
            cfg = await load_configuration(self._kubeconfig, self._context)
            cfg.connection_pool_maxsize = self.settings.pool_size
            if not cfg.proxy:
                cfg.proxy = env_proxy(_host(cfg))
            self._api = ApiClient(configuration=cfg)
            self._api.user_agent = "flaggerpy"
            # kubernetes-asyncio opens its aiohttp session with trust_env=True, and aiohttp then looks the proxy
            # environment up in a worker thread on EVERY request (a thread hop and about 1 ms of CPU each, a
            # tenth of a canary step). The proxy was resolved once above, so the per-request lookup is turned off.
            self._api.rest_client.pool_manager._trust_env = False
        return self

    async def close(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        if self._wire is not None and self._wire.http is not None:
            await self._wire.http.close()
        if self._api is not None:
            await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def api_client(self) -> ApiClient:
        """The underlying kubernetes-asyncio ApiClient (for code that needs its configuration)."""
        if self._api is None:
            raise RuntimeError("KubeClient is not open: use 'async with KubeClient(...)' or await open()")
        return self._api

    @property
    def closed(self) -> bool:
        """True once the HTTP session is closed (or was never opened)."""
        return self._api is None or self._api.rest_client.pool_manager.closed

    def add_observer(self, observer: RequestObserver) -> None:
        """Register ``observer(verb, resource, status, seconds)``, called after every HTTP attempt."""
        self._observers.append(observer)

    def set_write_fence(self, fence: WriteFence | None) -> None:
        """Check ``fence(resource)`` before sending every write (each retry included); a refused write raises
        :class:`~flaggerpy.kube.errors.NotLeading` without reaching the server. Leader election installs one so
        that a replica past its renew deadline writes nothing, even from a step already in flight (invariant 9)."""
        self._fence = fence

    def add_undecodable_observer(self, observer: UndecodableObserver) -> None:
        """Register ``observer(resource, count)``, told of every object skipped as undecodable (a metric)."""
        self._undecodable_observers.append(observer)

    def report_undecodable(self, resource: str, count: int = 1) -> None:
        """Objects of ``resource`` could not be decoded (nested too deeply) and were skipped: tell the observers,
        and log it once per resource (a hostile object repeats on every relist and must not flood the log)."""
        if resource not in self._undecodable_logged:
            self._undecodable_logged.add(resource)
            log.warning("skipping objects that cannot be decoded (nested too deeply); further ones are only counted",
                        resource=resource, count=count)
        for observer in self._undecodable_observers:
            try:
                observer(resource, count)
            except Exception:  # telemetry must never fail a list or a watch
                log.exception("undecodable observer failed", observer=repr(observer))

    def resource(self, resource: Resource) -> ResourceClient:
        """A handle bound to this client: ``kube.resource(DEPLOYMENTS).get(name, namespace)``."""
        return ResourceClient(self, resource)

    def _observe(self, verb: str, resource: str, status: int, seconds: float) -> None:
        for observer in self._observers:
            try:
                observer(verb, resource, status, seconds)
            except Exception:  # an observer is telemetry: it must never fail a request
                log.exception("request observer failed", observer=repr(observer))

    def _timeout(self, read: float) -> aiohttp.ClientTimeout:
        # Only the socket connect is bounded, not aiohttp's "connect" (which includes waiting for a free pooled
        # connection): under load a request may queue for the pool, and that wait is not a network failure.
        return aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout, sock_read=read)

    def _transport(self) -> _Transport:
        if self._wire is None:
            self._wire = _Transport.of(self.api_client, self.settings, self._timeout(self.settings.read_timeout))
        return self._wire

    async def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: bytes | None,
        content_type: str,
        timeouts: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        wire = self._transport()
        headers = await self._headers(wire, content_type)
        url = wire.host + path
        if query:
            url += "?" + urlencode(query)
        # The path is quoted by Resource.path and the query by urlencode: yarl need not parse and re-quote it.
        return await wire.session.request(
            method, URL(url, encoded=True), headers=headers, data=body, timeout=timeouts or wire.timeout, **wire.extra
        )

    @staticmethod
    async def _headers(wire: _Transport, content_type: str) -> dict[str, str]:
        headers = dict(wire.headers)
        headers["Content-Type"] = content_type
        token = await wire.bearer_token()
        if token:
            headers["Authorization"] = token
        return headers

    async def _exchange(
        self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None, content_type: str
    ) -> tuple[int, bytes, str | None]:
        """One HTTP exchange: status, body and the Retry-After header."""
        wire = self._transport()
        if wire.http is None:
            response = await self._send(method, path, query, body, content_type)
            try:
                return response.status, await response.read(), response.headers.get("Retry-After")
            finally:
                response.release()
        target = f"{path}?{urlencode(query)}" if query else path
        answer = await wire.http.request(method, target, await self._headers(wire, content_type), body)
        return answer.status, answer.body, answer.headers.get("retry-after")

    async def _attempt(
        self,
        verb: str,
        label: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: bytes | None,
        content_type: str,
        collection: bool = False,
    ) -> Any:
        await self._throttle(label)
        # After the throttle's wait: leadership may have ended while the request queued for a token.
        if self._fence is not None and method != "GET" and not self._fence(label):
            raise NotLeading(0, reason="NotLeading", message=f"{verb} {label} not sent: this replica no longer leads")
        start = time.monotonic()
        status = 0
        try:
            status, data, retry_after_header = await self._exchange(method, path, query, body, content_type)
        except TransportError as exc:
            raise Unavailable(0, reason=exc.cause, message=str(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(0, reason=type(exc).__name__, message=str(exc) or "request timed out") from exc
        finally:
            self._observe(verb, label, status, time.monotonic() - start)
        if not 200 <= status < 300:
            raise error_from_status(status, data, _retry_after_seconds(retry_after_header))
        if not data:
            return {}
        if not collection:
            return jsonio.loads(data)
        doc, skipped = jsonio.loads_collection(data)
        if skipped:
            self.report_undecodable(label, skipped)
        return doc

    async def _throttle(self, resource: str) -> None:
        """Wait for the client's token bucket (every attempt and every watch takes a token, as in client-go), except
        for the resources ``ClientSettings.unthrottled`` names (the Lease)."""
        if self._bucket is not None and resource not in self.settings.unthrottled:
            wait = self._bucket.reserve()
            if wait > 0:
                await asyncio.sleep(wait)

    def _delay(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt``: the server's Retry-After, else the backoff."""
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.retry_after_max)
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """``backoff_initial`` doubled per failed attempt, plus up to ``backoff_jitter`` seconds, at most
        ``backoff_max`` (the exponential-with-jitter schedule tenacity's ``wait_exponential_jitter`` computes)."""
        settings = self.settings
        try:
            delay = settings.backoff_initial * 2.0 ** (attempt - 1) + random.uniform(0, settings.backoff_jitter)
        except OverflowError:
            return settings.backoff_max
        return max(0.0, min(delay, settings.backoff_max))

    async def request(
        self,
        verb: str,
        resource: Resource | str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        collection: bool = False,
    ) -> Any:
        """Send one API request with retries on 429/5xx/connection errors; return the decoded JSON answer.

        ``collection``: the answer is a list; an item too deep to decode is left out (and reported) instead of
        failing the whole list. ``verb`` and ``resource`` only label the request for observers and logs. Raises the
        mapped
        :class:`~flaggerpy.kube.errors.ApiError` subclass once the retry budget is spent.
        """
        label = str(resource)
        params = _query(query) if query else []
        data = None if body is None else jsonio.dumps(body)
        try:
            return await self._attempt(verb, label, method, path, params, data, content_type, collection)
        except ApiError as exc:
            # Most requests succeed at once: tenacity is only set up once the first attempt failed.
            if not _is_retryable(exc) or self.settings.retry_attempts < 2:
                raise
            first = exc
        self._log_retry(verb, label, 1, first)
        await asyncio.sleep(self._delay(1, first))
        # Attempts 2..N: tenacity numbers them from 1, so the backoff is asked for one attempt more.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts - 1),
            wait=lambda s: self._delay(s.attempt_number + 1, s.outcome.exception() if s.outcome else None),
            retry=retry_if_exception(_is_retryable),
            before_sleep=lambda s: self._log_retry(
                verb, label, s.attempt_number + 1, s.outcome.exception() if s.outcome else None
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(verb, label, method, path, params, data, content_type, collection)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    @staticmethod
    def _log_retry(verb: str, label: str, attempt: int, exc: BaseException | None) -> None:
        log.debug("retrying API request", verb=verb, resource=label, attempt=attempt, error=str(exc) if exc else None)

    @contextlib.asynccontextmanager
    async def stream(
        self, resource: Resource, namespace: str | None, query: Mapping[str, Any], read_timeout: float
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """Open a watch stream (one attempt, no retries: the watcher owns reconnect policy).

        Yields the response body as a line-readable stream; raises the mapped ApiError on a non-2xx answer and
        :class:`Unavailable` when the server cannot be reached.
        """
        label = str(resource)
        await self._throttle(label)
        start = time.monotonic()
        status = 0
        try:
            response = await self._send(
                "GET", resource.path(namespace), _query(query), None, "application/json", self._timeout(read_timeout)
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._observe("watch", label, status, time.monotonic() - start)
            raise Unavailable(0, reason=type(exc).__name__, message=str(exc) or "connect timed out") from exc
        try:
            status = response.status
            self._observe("watch", label, status, time.monotonic() - start)
            if status != 200:
                data = await response.read()
                raise error_from_status(status, data, _retry_after_seconds(response.headers.get("Retry-After")))
            yield response.content
        finally:
            response.release()

    # Typed verbs: thin wrappers that build paths and bodies.

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        """Read one object; raises NotFound when absent."""
        _check_namespace(resource, namespace)
        return await self.request("get", resource, "GET", resource.path(namespace, name))  # type: ignore[no-any-return]

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        """List objects (all namespaces when ``namespace`` is None) following pagination.

        Returns the items (each with ``kind``/``apiVersion`` filled in, which list answers omit) and the list's
        resourceVersion, the point a watch resumes from.
        """
        items: list[Obj] = []
        token: str | None = None
        while True:
            query = {
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": self.settings.list_page_size,
                "continue": token,
            }
            doc = await self.request("list", resource, "GET", resource.path(namespace), query=query, collection=True)
            for item in doc.get("items") or []:
                item.setdefault("kind", resource.kind)
                item.setdefault("apiVersion", resource.api_version)
                items.append(item)
            meta = doc.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                return items, str(meta.get("resourceVersion", ""))

    async def create(self, resource: Resource, obj: Obj) -> Obj:
        """Create ``obj`` in its ``metadata.namespace``; raises AlreadyExists or Invalid."""
        namespace = _namespace_of(resource, obj)
        return await self.request("create", resource, "POST", resource.path(namespace), body=obj)  # type: ignore[no-any-return]

    async def replace(self, resource: Resource, obj: Obj) -> Obj:
        """Replace ``obj`` (PUT); send its resourceVersion to get a Conflict instead of a lost update."""
        namespace = _namespace_of(resource, obj)
        path = resource.path(namespace, _name_of(resource, obj))
        return await self.request("update", resource, "PUT", path, body=obj)  # type: ignore[no-any-return]

    async def replace_status(self, resource: Resource, obj: Obj) -> Obj:
        """Replace the ``status`` subresource of ``obj``."""
        namespace = _namespace_of(resource, obj)
        path = resource.path(namespace, _name_of(resource, obj), "status")
        return await self.request("update", f"{resource}/status", "PUT", path, body=obj)  # type: ignore[no-any-return]

    async def patch(
        self,
        resource: Resource,
        name: str,
        namespace: str | None,
        body: Any,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> Obj:
        """Patch one object with a merge (dict), JSON (list of ops) or strategic merge patch."""
        _check_namespace(resource, namespace)
        if patch_type not in _PATCH_CONTENT_TYPES:
            raise ValueError(f"patch_type: must be one of {sorted(_PATCH_CONTENT_TYPES)}, got {patch_type!r}")
        label = f"{resource}/{subresource}" if subresource else str(resource)
        path = resource.path(namespace, name, subresource)
        return await self.request(  # type: ignore[no-any-return]
            "patch", label, "PATCH", path, body=body, content_type=_PATCH_CONTENT_TYPES[patch_type]
        )

    async def patch_status(
        self, resource: Resource, name: str, namespace: str | None, body: Any, patch_type: PatchType = "merge"
    ) -> Obj:
        """Patch the ``status`` subresource."""
        return await self.patch(resource, name, namespace, body, patch_type, subresource="status")

    async def delete(
        self, resource: Resource, name: str, namespace: str | None = None, propagation_policy: str | None = None
    ) -> Obj:
        """Delete one object; returns the server's answer (the object being finalized, or a Status)."""
        _check_namespace(resource, namespace)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation_policy}
        return await self.request(  # type: ignore[no-any-return]
            "delete",
            resource,
            "DELETE",
            resource.path(namespace, name),
            body=body if propagation_policy else None,
        )


class ResourceClient:
    """A :class:`Resource` bound to a :class:`KubeClient`; same verbs without repeating the resource."""

    def __init__(self, kube: KubeClient, resource: Resource) -> None:
        self.kube = kube
        self.resource = resource

    async def get(self, name: str, namespace: str | None = None) -> Obj:
        """See :meth:`KubeClient.get`."""
        return await self.kube.get(self.resource, name, namespace)

    async def list(
        self, namespace: str | None = None, label_selector: str | None = None, field_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        """See :meth:`KubeClient.list`."""
        return await self.kube.list(self.resource, namespace, label_selector, field_selector)

    async def create(self, obj: Obj) -> Obj:
        """See :meth:`KubeClient.create`."""
        return await self.kube.create(self.resource, obj)

    async def replace(self, obj: Obj) -> Obj:
        """See :meth:`KubeClient.replace`."""
        return await self.kube.replace(self.resource, obj)

    async def replace_status(self, obj: Obj) -> Obj:
        """See :meth:`KubeClient.replace_status`."""
        return await self.kube.replace_status(self.resource, obj)

    async def patch(self, name: str, namespace: str | None, body: Any, patch_type: PatchType = "merge") -> Obj:
        """See :meth:`KubeClient.patch`."""
        return await self.kube.patch(self.resource, name, namespace, body, patch_type)

    async def patch_status(self, name: str, namespace: str | None, body: Any, patch_type: PatchType = "merge") -> Obj:
        """See :meth:`KubeClient.patch_status`."""
        return await self.kube.patch_status(self.resource, name, namespace, body, patch_type)

    async def delete(self, name: str, namespace: str | None = None, propagation_policy: str | None = None) -> Obj:
        """See :meth:`KubeClient.delete`."""
        return await self.kube.delete(self.resource, name, namespace, propagation_policy)
