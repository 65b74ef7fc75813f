"""The analysis contract's ObjectLookup over the engine's informer caches (MetricTemplates, AlertProviders, Secrets)."""

from __future__ import annotations

import base64
import binascii

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import AlertProvider, MetricTemplate
from flaggerpy.canary.cache import Caches
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from flaggerpy.kube.errors import NotFound
from flaggerpy.log import get_logger

log = get_logger(__name__)


class CacheLookup:
    """Templates and providers from the caches; Secrets with one GET each (their values are never cached)."""

    def __init__(self, caches: Caches, kube: KubeClient) -> None:
        self._caches = caches
        self._kube = kube

    def metric_template(self, namespace: str, name: str) -> MetricTemplate | None:
        """The MetricTemplate, or None when it does not exist or cannot be parsed (logged with its fields)."""
        obj = self._caches.get(res.METRICTEMPLATES, namespace, name)
        if obj is None:
            return None
        try:
            return MetricTemplate.from_dict(obj)
        except SpecError as exc:
            log.warning("invalid MetricTemplate", template=f"{namespace}/{name}", problems=str(exc))
            return None

    def alert_provider(self, namespace: str, name: str) -> AlertProvider | None:
        """The AlertProvider, or None when it does not exist or cannot be parsed (logged with its fields)."""
        obj = self._caches.get(res.ALERTPROVIDERS, namespace, name)
        if obj is None:
            return None
        try:
            return AlertProvider.from_dict(obj)
        except SpecError as exc:
            log.warning("invalid AlertProvider", provider=f"{namespace}/{name}", problems=str(exc))
            return None

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data decoded to text (undecodable values are skipped), or None when absent.

        Read from the API at each use, as Flagger does: the Secret cache holds digests, never values.
        """
        try:
            obj = await self._kube.resource(res.SECRETS).get(name, namespace)
        except NotFound:
            obj = None
        if obj is None:
            return None
        out: dict[str, str] = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                out[key] = base64.b64decode(value).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                log.warning("secret value is not base64 text", secret=f"{namespace}/{name}", key=key)
        out.update(obj.get("stringData") or {})
        return out
