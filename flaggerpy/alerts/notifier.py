"""The engine's notifier: resolves a canary's ``analysis.alerts[]`` to AlertProviders and delivers to each.

Flagger's rules: an alert subscribed at ``info`` gets everything, at ``warn`` gets warn and error, at ``error``
only errors; a canary without ``alerts`` falls back to the controller-wide default (``--slack-url`` or
``--msteams-url``), which gets every message. A provider's ``secretRef`` Secret supplies ``address`` (required,
overrides ``spec.address``), and optionally ``token`` (sent as a bearer token) and ``proxy``. Delivery failures are
logged, never raised: an unreachable chat service must not stop a release.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp

from flaggerpy.alerts.client import DeliveryError, DeliverySettings, normalize_proxy, post_json, url_problem
from flaggerpy.alerts.factory import UnsupportedProvider, chat_format
from flaggerpy.alerts.message import Alert, Severity, Target
from flaggerpy.apis.flagger import AlertProvider, Canary, CanaryAlert
from flaggerpy.log import get_logger
from flaggerpy.outbound import OutboundPolicy, SessionUser

_log = get_logger("flaggerpy.alerts")

DEFAULT_USERNAME = "flagger"
DEFAULT_CHANNEL = "general"


class ProviderLookup(Protocol):
    """Where AlertProviders and their Secrets come from (the analysis contract's ObjectLookup satisfies it)."""

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        """The AlertProvider, or None when it does not exist."""
        ...

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data decoded to text, or None when it does not exist."""
        ...


class ResolveError(Exception):
    """An alert's provider cannot be used; the message names the object and the problem."""


@dataclass(frozen=True)
class DefaultAlerts:
    """The controller-wide destination, from Flagger's flags. MS Teams wins when both URLs are set, as in Flagger."""

    slack_url: str = ""
    slack_token: str = ""
    slack_proxy_url: str = ""
    slack_user: str = DEFAULT_USERNAME
    slack_channel: str = ""
    msteams_url: str = ""
    msteams_proxy_url: str = ""

    def with_environment(self, environ: Mapping[str, str]) -> DefaultAlerts:
        """These settings with Flagger's environment variables applied; a non-empty variable wins over its flag.

        Flagger's Helm chart passes the webhook URLs as ``SLACK_URL``/``MSTEAMS_URL`` from a Secret, so honouring
        them keeps those deployments working unchanged.
        """
        overrides = {
            attribute: environ[variable] for attribute, variable in _ENVIRONMENT.items() if environ.get(variable)
        }
        return replace(self, **overrides)

    def target(self) -> Target | None:
        """The resolved destination, or None when no URL is configured; raises ValueError naming a bad flag."""
        msteams_proxy = normalize_proxy(self.msteams_proxy_url)
        slack_proxy = normalize_proxy(self.slack_proxy_url)
        for flag, value in (
            ("--msteams-url", self.msteams_url),
            ("--msteams-proxy-url", msteams_proxy),
            ("--slack-url", self.slack_url),
            ("--slack-proxy-url", slack_proxy),
        ):
            problem = url_problem(value, proxy=flag.endswith("-proxy-url")) if value else None
            if problem is not None:
                raise ValueError(f"{flag}: {problem}")
        if self.msteams_url:
            return Target("msteams", self.msteams_url, proxy=msteams_proxy, label="--msteams-url")
        if self.slack_url:
            return Target(
                "slack",
                self.slack_url,
                token=self.slack_token,
                proxy=slack_proxy,
                username=self.slack_user or DEFAULT_USERNAME,
                channel=self.slack_channel,
                label="--slack-url",
            )
        return None


_ENVIRONMENT = {
    "slack_url": "SLACK_URL",
    "slack_token": "SLACK_TOKEN",
    "slack_proxy_url": "SLACK_PROXY_URL",
    "msteams_url": "MSTEAMS_URL",
    "msteams_proxy_url": "MSTEAMS_PROXY_URL",
}


class AlertNotifier(SessionUser):
    """Sends alerts about canaries; implements ``flaggerpy.analysis.base.Notifier``.

    ``cluster_name`` (Flagger's ``-cluster-name``) is added to every message as a ``Cluster`` field. One aiohttp
    session serves every delivery; pass ``session`` to share one, else it is created on first use and closed by
    :meth:`close`. Construction raises ValueError naming the flag when ``defaults`` holds a malformed URL.
    """

    def __init__(
        self,
        lookup: ProviderLookup,
        *,
        defaults: DefaultAlerts | None = None,
        cluster_name: str = "",
        session: aiohttp.ClientSession | None = None,
        settings: DeliverySettings | None = None,
        policy: OutboundPolicy | None = None,
        same_namespace_only: bool = False,
    ) -> None:
        super().__init__(session, policy)
        # Flagger's -no-cross-namespace-refs: a providerRef to another namespace is refused.
        self._same_namespace_only = same_namespace_only
        self._lookup = lookup
        self._default = (defaults or DefaultAlerts()).target()
        self._cluster_name = cluster_name
        self._settings = settings or DeliverySettings()

    async def notify(self, canary: Canary, message: str, severity: str, fields: dict[str, str]) -> None:
        """Deliver ``message`` to every alert of the canary whose severity admits ``severity``; never raises."""
        try:
            level = Severity.parse(severity)
        except ValueError as exc:
            _log.warning("alert severity not understood, sending as info", canary=canary.key, error=str(exc))
            level = Severity.INFO
        alert = self._alert(canary, message, level, fields)
        alerts = canary.analysis.alerts or []
        if not alerts:
            if self._default is not None:
                await self._deliver(canary, self._default, alert)
            return
        subscribed = [entry for entry in alerts if _admits(entry, level)]
        await asyncio.gather(*(self._resolve_and_deliver(canary, entry, alert) for entry in subscribed))

    def _alert(self, canary: Canary, message: str, level: Severity, fields: Mapping[str, str]) -> Alert:
        rows = [("Cluster", self._cluster_name)] if self._cluster_name else []
        rows.extend((name, value) for name, value in fields.items() if name != "Cluster" or not self._cluster_name)
        return Alert(canary.metadata.name, canary.metadata.namespace, message, level, tuple(rows))

    async def _resolve_and_deliver(self, canary: Canary, entry: CanaryAlert, alert: Alert) -> None:
        try:
            target = await self.resolve(canary, entry)
        except ResolveError as exc:
            _log.error("alert not sent", canary=canary.key, alert=entry.name, error=str(exc))
            return
        await self._deliver(canary, target, alert)

    async def resolve(self, canary: Canary, entry: CanaryAlert) -> Target:
        """The destination of one ``analysis.alerts[]`` entry; raises ResolveError naming what is wrong."""
        namespace = entry.provider_ref.namespace or canary.metadata.namespace
        ref = f"AlertProvider {namespace}/{entry.provider_ref.name}"
        if self._same_namespace_only and namespace != canary.metadata.namespace:
            raise ResolveError(f"{ref}: providerRef to another namespace refused (-no-cross-namespace-refs)")
        provider = self._lookup.alert_provider(namespace, entry.provider_ref.name)
        if provider is None:
            raise ResolveError(f"{ref}: not found")
        spec = provider.spec
        try:
            chat_format(spec.type)
        except UnsupportedProvider as exc:
            raise ResolveError(f"{ref}: {exc}") from None
        address, token, proxy, proxy_field = spec.address or "", "", spec.proxy or "", "spec.proxy"
        if spec.secret_ref is not None:
            secret = await self._lookup.secret_data(namespace, spec.secret_ref.name)
            if secret is None:
                raise ResolveError(f"{ref}: spec.secretRef: Secret {namespace}/{spec.secret_ref.name} not found")
            if not secret.get("address"):
                raise ResolveError(
                    f"{ref}: spec.secretRef: Secret {namespace}/{spec.secret_ref.name} has no 'address' key"
                )
            address = secret["address"].strip()
            token = secret.get("token", "").strip()
            if secret.get("proxy", "").strip():
                proxy, proxy_field = secret["proxy"], "secretRef proxy"
        if not address:
            raise ResolveError(f"{ref}: spec.address: required when there is no secretRef")
        where = "secretRef address" if spec.secret_ref is not None else "spec.address"
        proxy = normalize_proxy(proxy)
        for field, value, is_proxy in ((where, address, False), (proxy_field, proxy, True)):
            problem = url_problem(value, proxy=is_proxy) if value else None
            if problem is not None:
                raise ResolveError(f"{ref}: {field}: {problem}")
        return Target(
            spec.type,
            address,
            token=token,
            proxy=proxy,
            username=spec.username or DEFAULT_USERNAME,
            channel=spec.channel or DEFAULT_CHANNEL,
            label=ref,
        )

    async def _deliver(self, canary: Canary, target: Target, alert: Alert) -> None:
        fmt = chat_format(target.type)
        try:
            await post_json(
                self._client(),
                fmt.endpoint(target.url),
                fmt.payload(alert, target),
                token=target.token,
                proxy=target.proxy,
                settings=self._settings,
            )
        except DeliveryError as exc:
            _log.error("alert delivery failed", canary=canary.key, to=target.label, type=target.type, error=str(exc))
            return
        _log.debug("alert delivered", canary=canary.key, to=target.label, severity=str(alert.severity))


def _admits(entry: CanaryAlert, level: Severity) -> bool:
    try:
        return Severity.parse(entry.severity).admits(level)
    except ValueError:
        return True
