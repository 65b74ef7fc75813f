"""The dashboard's web server on 127.0.0.1: the bundled page, its live streams (SSE) and the action endpoint.

The server holds the user's credentials, so it defends them against other web pages the same browser opens: only
requests naming the server by its loopback address (no DNS rebinding) are served, actions need the per-process
token the page carries (a cross-origin page can neither read it nor send the header without a preflight we never
answer), and the Content-Security-Policy allows nothing that is not served from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.resources
import json
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from kubernetes_asyncio.config import ConfigException, list_kube_config_contexts

from flaggerpy.ctl.common import CtlError, context_namespace
from flaggerpy.dashboard import access
from flaggerpy.dashboard.actions import perform
from flaggerpy.dashboard.caches import Caches
from flaggerpy.dashboard.hub import Hub, HubSettings, Subscriber
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.log import get_logger

log = get_logger(__name__)

TOKEN_HEADER = "X-Dashboard-Token"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"


@dataclass(frozen=True)
class DashboardSettings:
    """How the dashboard runs."""

    kubeconfig: str | None = None
    context: str | None = None
    host: str = "127.0.0.1"
    port: int = 3100
    """0: a free port."""
    read_only: bool = False
    """Hide the actions and refuse them."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to try when the user may not list canaries cluster-wide (the context's is always tried)."""
    sync_timeout: float = 30.0
    keepalive: float = 15.0
    """Seconds between comments on an idle stream, so proxies and browsers keep it open."""
    hub: HubSettings = field(default_factory=HubSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)


def _assets() -> dict[str, bytes]:
    root = importlib.resources.files("flaggerpy.dashboard") / "static"
    return {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}


class DashboardApp:
    """Routes of the dashboard over a running :class:`Hub`."""

    def __init__(self, kube: KubeClient, hub: Hub, settings: DashboardSettings, context_name: str) -> None:
        self.kube = kube
        self.hub = hub
        self.settings = settings
        self.token = secrets.token_urlsafe(24)
        self.context_name = context_name
        self.port = settings.port
        self._assets = _assets()

    def application(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._guard])
        app.add_routes([
            web.get("/", self._index),
            web.get("/static/{file}", self._static),
            web.get("/api/stream", self._list_stream),
            web.get(r"/api/stream/{namespace:" + _NAME + "}/{name:" + _NAME + "}", self._page_stream),
            web.post(r"/api/canaries/{namespace:" + _NAME + "}/{name:" + _NAME + "}/{action:[a-z]+}", self._act),
        ])
        return app

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        allowed = {f"{host}:{self.port}" for host in ("127.0.0.1", "localhost", self.settings.host)}
        if request.host not in allowed:
            return web.Response(status=421, text="this dashboard answers only to its loopback address")
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.Response:
        page = self._assets["index.html"].decode()
        config = {"token": self.token, "readOnly": self.settings.read_only, "context": self.context_name}
        page = page.replace("{{CONFIG}}", html.escape(json.dumps(config), quote=True))
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        body = self._assets.get(name)
        suffix = name[name.rfind("."):] if "." in name else ""
        if body is None or name == "index.html" or suffix not in CONTENT_TYPES:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=CONTENT_TYPES[suffix], headers={"Cache-Control": "no-cache"})

    async def _stream(self, request: web.Request,
                      subscription: contextlib.AbstractContextManager[Subscriber]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        with subscription as sub:
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), self.settings.keepalive)
                except TimeoutError:
                    message = b": keepalive\n\n"
                if message is None:
                    break
                try:
                    await response.write(message)
                except (ConnectionResetError, RuntimeError):
                    break
        return response

    async def _list_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, self.hub.list_subscription())

    async def _page_stream(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return await self._stream(request, self.hub.page_subscription(info["namespace"], info["name"]))

    async def _act(self, request: web.Request) -> web.Response:
        if self.settings.read_only:
            return web.json_response({"message": "the dashboard runs with --read-only"}, status=403)
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return web.json_response({"message": "missing or wrong dashboard token"}, status=400)
        info = request.match_info
        outcome = await perform(self.kube, info["namespace"], info["name"], info["action"])
        log.info("dashboard action", canary=f"{info['namespace']}/{info['name']}", action=info["action"],
                 status=outcome.status)
        return web.json_response({"message": outcome.message}, status=outcome.status)


@dataclass
class Running:
    """A dashboard being served: its URL and the parts tests and benchmarks look at."""

    url: str
    app: DashboardApp
    hub: Hub
    caches: Caches

    def canary_url(self, namespace: str, name: str) -> str:
        """The address of one canary's page."""
        return f"{self.url}/#/canary/{namespace}/{name}"


def context_name(kubeconfig: str | None, context: str | None) -> str:
    """The kubeconfig context the dashboard acts through ("" in a pod or when unreadable), shown on the page."""
    if context:
        return context
    with contextlib.suppress(ConfigException, OSError, TypeError, ValueError):
        _, active = list_kube_config_contexts(config_file=kubeconfig)
        return str((active or {}).get("name") or "")
    return ""


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serve(settings: DashboardSettings, kube: KubeClient | None = None) -> AsyncIterator[Running]:
    """Discover the user's scope, start the informers and the server; yields once the caches are listed.

    ``kube``: a client to use (it stays open); by default one is opened from the kubeconfig and closed at the end.
    """
    async with contextlib.AsyncExitStack() as stack:
        if kube is None:
            kube = await stack.enter_async_context(KubeClient(kubeconfig=settings.kubeconfig,
                                                              context=settings.context))
        fallback = [*settings.namespaces, context_namespace(settings.kubeconfig, settings.context)]
        scope = await access.discover(kube, fallback)
        caches = Caches(kube, scope, settings.watch)
        hub = Hub(caches, settings.hub)
        stack.push_async_callback(caches.stop)
        unsynced = await caches.start(settings.sync_timeout)
        if unsynced:
            raise CtlError(f"could not list and watch {', '.join(unsynced)} within {settings.sync_timeout:g}s "
                           "(are you allowed to watch them? is the API server answering?)")
        hub.rebuild()
        flusher = asyncio.create_task(hub.run(), name="dashboard-flush")
        stack.callback(flusher.cancel)
        app = DashboardApp(kube, hub, settings, context_name(settings.kubeconfig, settings.context))
        runner = web.AppRunner(app.application(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        sock = _listen(settings.host, settings.port)
        app.port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        url = f"http://{settings.host}:{app.port}"
        log.info("dashboard serving", url=url, cluster_wide=scope.cluster_wide)
        yield Running(url, app, hub, caches)
