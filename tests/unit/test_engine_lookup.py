"""The analysis ObjectLookup over the engine's caches."""

from __future__ import annotations

import base64

from flaggerpy.canary.cache import Caches
from flaggerpy.canary.lookup import CacheLookup
from flaggerpy.kube import resources as res
from flaggerpy.kube.errors import NotFound
from flaggerpy.kube.informer import Store


def caches_with(**objects: list[dict]) -> Caches:
    stores = {}
    for resource in (res.METRICTEMPLATES, res.ALERTPROVIDERS, res.SECRETS):
        store = Store()
        for obj in objects.get(resource.plural, []):
            store.put(obj)
        stores[resource] = store
    return Caches(stores)


def meta(name: str) -> dict:
    return {"name": name, "namespace": "test", "resourceVersion": "1"}


class _SecretsApi:
    """The Secrets endpoint: the lookup reads each Secret when it is used (the cache keeps digests only)."""

    def __init__(self, secrets: list[dict]) -> None:
        self._secrets = {s["metadata"]["name"]: s for s in secrets}
        self.reads: list[str] = []

    def resource(self, resource: object) -> _SecretsApi:
        assert resource == res.SECRETS
        return self

    async def get(self, name: str, namespace: str) -> dict:
        self.reads.append(f"{namespace}/{name}")
        if name not in self._secrets:
            raise NotFound(404, reason="NotFound", message=f"secrets {name!r} not found")
        return self._secrets[name]


async def test_templates_and_providers_come_from_the_cache_and_secrets_from_the_api() -> None:
    template = {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": meta("error-rate"),
                "spec": {"provider": {"type": "prometheus", "address": "http://prom:9090"}, "query": "up"}}
    broken = {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": meta("broken"),
              "spec": {"provider": {}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": meta("creds"),
              "data": {"token": base64.b64encode(b"s3cret").decode(), "junk": "!!not-base64!!"}}
    api = _SecretsApi([secret])
    lookup = CacheLookup(caches_with(metrictemplates=[template, broken]), kube=api)  # type: ignore[arg-type]
    found = lookup.metric_template("test", "error-rate")
    assert found is not None and found.spec.query == "up"
    assert lookup.metric_template("test", "broken") is None
    assert lookup.metric_template("test", "missing") is None
    assert lookup.alert_provider("test", "missing") is None
    assert await lookup.secret_data("test", "creds") == {"token": "s3cret"}
    assert await lookup.secret_data("test", "missing") is None
    assert api.reads == ["test/creds", "test/missing"]
