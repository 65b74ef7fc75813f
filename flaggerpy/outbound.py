"""Outbound HTTP shared by the alert senders, the webhook runner and the metric checks.

Alerts and analysis are sibling layers that may not import each other, yet both hold one aiohttp session that is
either borrowed or owned, and both retry with the same kind of backoff; this bottom-layer module is that piece.

It is also the one place that decides where a tenant's addresses (MetricTemplate ``spec.provider.address``,
webhook ``url``, AlertProvider ``address`` and ``proxy``) may lead. Every session made here checks each request's
host and, through its resolver, every address a host name resolves to, so the address checked is the address
connected to (a name that resolves to the metadata server is refused like the literal address). Link-local and
cloud-metadata addresses are refused everywhere; loopback and the pod's own addresses too when the controller
runs in-cluster. An operator widens this with :attr:`OutboundPolicy.allow` (CIDRs and host names).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential
from yarl import URL

USER_AGENT = "flaggerpy"
# Rate limiting and server errors may pass on a later attempt; 501 says the server will never support the call.
RETRY_STATUSES = frozenset({429, *range(500, 600)}) - {501}

RetryOn = type[BaseException] | tuple[type[BaseException], ...]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services hand out the node's (or the controller's) credentials to whoever asks from the pod.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = (ipaddress.ip_network("fd00:ec2::254/128"),)
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
# The downward-API variable deploy/ sets to the pod's IP.
POD_IP_ENV = "POD_IP"


class OutboundRefused(aiohttp.ClientError):
    """A request the outbound policy does not allow; the message says why (it never carries a URL query)."""


def redact_url(url: str | URL) -> str:
    """``scheme://host[:port]/path`` of ``url``: no user info, query or fragment, which may carry secrets."""
    try:
        parsed = url if isinstance(url, URL) else URL(str(url))
    except (TypeError, ValueError):
        return "<not a URL>"
    if not parsed.absolute:
        return "<not an absolute URL>"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    host = f"[{parsed.host}]" if parsed.host and ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}{parsed.path}"


def address_problem(url: str, *, allow_user_info: bool = False) -> str | None:
    """Why ``url`` is not a usable outbound address, or None (an http(s) URL with a host, no user info or fragment).

    ``allow_user_info`` is for proxies, whose credentials are written as ``user:password@``. The message leaves the
    URL out: the caller prefixes the field, and the URL may hold a secret.
    """
    try:
        parsed = URL(url.strip())
    except (TypeError, ValueError):
        return "is not a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an http:// or https:// URL"
    if (parsed.raw_user or parsed.raw_password) and not allow_user_info:
        return "must not contain user info (user:password@); use the Secret's credentials"
    # A '#' would turn the path and query the controller appends into a fragment that is never sent.
    if parsed.raw_fragment or "#" in url:
        return "must not contain a fragment ('#')"
    return None


def _host_key(host: str) -> str:
    return host.strip().rstrip(".").lower().strip("[]")


def _parse_allow(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            hosts.add(_host_key(text))
    return tuple(networks), frozenset(hosts)


def parse_allow_entry(text: str) -> str:
    """One ``--outbound-allow`` entry (a CIDR, an IP or a host name); ValueError when it is none of them."""
    entry = text.strip()
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        if not entry or "/" in entry or ":" in entry or " " in entry:
            raise ValueError(f"{text!r} is neither a CIDR nor a host name") from None
    return entry


@dataclass(frozen=True)
class OutboundPolicy:
    """Where requests made on behalf of tenants may go.

    ``in_cluster``: the controller runs in a pod, so loopback and ``own_addresses`` are the controller itself,
    never a tenant's backend. Run from a kubeconfig, loopback is the user's own machine (a port-forwarded
    Prometheus, the demo) and stays allowed. ``allow`` lists CIDRs and host names the operator permits despite
    these rules (``--outbound-allow``). ``ambient_credentials`` lets providers without a Secret use the
    controller's own cloud identity, towards the provider's official endpoints only.
    """

    in_cluster: bool = False
    allow: tuple[str, ...] = ()
    own_addresses: frozenset[str] = frozenset()
    ambient_credentials: bool = False
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _own: frozenset[IPAddress] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks, hosts = _parse_allow(self.allow)
        object.__setattr__(self, "_networks", networks)
        object.__setattr__(self, "_hosts", hosts)
        own = set()
        for text in self.own_addresses:
            try:
                own.add(_plain(ipaddress.ip_address(text.strip())))
            except ValueError:
                continue
        object.__setattr__(self, "_own", frozenset(own))

    def host_allowed(self, host: str) -> bool:
        """Whether the operator allow-listed this host name (then any address it resolves to is allowed)."""
        return _host_key(host) in self._hosts

    def host_problem(self, host: str) -> str | None:
        """Why a request to ``host`` (a name or an IP literal) is refused before any resolution, or None."""
        key = _host_key(host)
        if key in self._hosts:
            return None
        if key in _METADATA_HOSTS or key.endswith(".metadata.google.internal"):
            return f"{key} is a cloud metadata service"
        try:
            address = ipaddress.ip_address(key.split("%", 1)[0])
        except ValueError:
            return None
        return self.ip_problem(address)

    def ip_problem(self, address: IPAddress) -> str | None:
        """Why connecting to ``address`` is refused, or None."""
        address = _plain(address)
        if any(address in network for network in self._networks):
            return None
        if any(address in network for network in _METADATA_ADDRESSES):
            return f"{address} is a cloud metadata service"
        if any(address in network for network in _LINK_LOCAL):
            return f"{address} is a link-local address (cloud metadata services live there)"
        if self.in_cluster:
            if address.is_loopback or address.is_unspecified:
                return f"{address} is the controller's own pod (loopback)"
            if address in self._own:
                return f"{address} is the controller's own pod address"
        return None

    @classmethod
    async def for_process(
        cls, *, in_cluster: bool, allow: Iterable[str] = (), ambient_credentials: bool = False
    ) -> OutboundPolicy:
        """The policy of this controller process; in-cluster, the pod's addresses are looked up without blocking."""
        own: set[str] = set()
        if in_cluster:
            if os.environ.get(POD_IP_ENV):
                own.add(os.environ[POD_IP_ENV])
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(socket.gethostname(), None)
            except OSError:
                infos = []
            own.update(str(info[4][0]) for info in infos)
        return cls(in_cluster=in_cluster, allow=tuple(allow), own_addresses=frozenset(own),
                   ambient_credentials=ambient_credentials)


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:169.254.169.254``) as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class _GuardedResolver(AbstractResolver):
    """Resolves without blocking the loop, then refuses the host when any of its addresses is forbidden.

    aiohttp connects only to the addresses returned here, so a name cannot be checked against one address and
    connected to another.
    """

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        problem = self._policy.host_problem(host)
        if problem is not None:
            raise OutboundRefused(f"address refused: {problem}")
        results = await self._inner.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return results
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            except ValueError:
                raise OutboundRefused(f"address refused: {host} resolved to something that is not an IP") from None
            problem = self._policy.ip_problem(address)
            if problem is not None:
                raise OutboundRefused(f"address refused: {_host_key(host)} resolves to {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _guard(policy: OutboundPolicy) -> aiohttp.ClientMiddlewareType:
    async def middleware(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        # IP literals never reach the resolver, and a metadata host name is refused before it is looked up.
        if request.url.raw_user or request.url.raw_password:
            raise OutboundRefused("address refused: user info in the URL")
        for url in (request.url, request.proxy):
            problem = policy.host_problem(url.host or "") if url is not None else None
            if problem is not None:
                raise OutboundRefused(f"address refused: {problem}")
        return await handler(request)

    return middleware


_ambient: ContextVar[bool] = ContextVar("flaggerpy_ambient_credentials", default=False)


@contextmanager
def ambient_credentials(allowed: bool) -> Iterator[None]:
    """Within the block, providers without a Secret may use the controller's own cloud identity (when ``allowed``).

    The metric checker sets it per query from :attr:`OutboundPolicy.ambient_credentials`; providers ask
    :func:`ambient_credentials_allowed`. A context variable, because the provider contract carries no policy.
    """
    token = _ambient.set(allowed)
    try:
        yield
    finally:
        _ambient.reset(token)


def ambient_credentials_allowed() -> bool:
    """Whether the running query may use the controller's own cloud identity (see :func:`ambient_credentials`)."""
    return _ambient.get()


def official_endpoint(url: str, domains: Iterable[str]) -> bool:
    """Whether ``url`` is an https URL on one of ``domains`` or their subdomains (e.g. ``googleapis.com``)."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return False
    host = _host_key(parsed.host or "")
    if parsed.scheme != "https" or parsed.raw_user or parsed.raw_fragment:
        return False
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def controller_session() -> aiohttp.ClientSession:
    """A session for endpoints the controller's own configuration names (the node's metadata server), which the
    tenant policy refuses. Never use it for an address a tenant wrote."""
    return aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})


def new_session(policy: OutboundPolicy | None = None) -> aiohttp.ClientSession:
    """An aiohttp session whose every request (and every proxy it goes through) obeys ``policy``.

    Redirects are the caller's to refuse (pass ``allow_redirects=False``): aiohttp has no session-wide switch.
    """
    policy = policy or OutboundPolicy()
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(policy))
    return aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, connector=connector,
                                 middlewares=(_guard(policy),))


class SessionUser:
    """Base of an object that makes all its HTTP calls through one aiohttp session.

    A ``session`` passed in is borrowed and left open. Without one, a session is created on first use (lazily, so
    the object can be built outside a running event loop), obeying ``policy``, and closed by :meth:`close`. Use the
    object as an async context manager, or call :meth:`close`.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, policy: OutboundPolicy | None = None) -> None:
        self._session = session
        self._owns_session = session is None
        self._policy = policy or OutboundPolicy()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this object created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = new_session(self._policy)
        return self._session


def retry_policy(
    retries: int,
    *,
    backoff_min: float,
    backoff_max: float,
    on: RetryOn,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """Up to ``retries`` attempts after the first while the failure is one of ``on``; the last failure is re-raised.

    The pause before each retry doubles from ``backoff_min`` up to ``backoff_max`` seconds.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff_min, min=backoff_min, max=backoff_max),
        retry=retry_if_exception_type(on),
        before_sleep=before_sleep,
        reraise=True,
    )
