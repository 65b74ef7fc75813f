"""No Secret value ever leaves through the controller: unique strings seeded into every provider Secret, alert
Secret and tracked Secret are greped from every log line, Event, Canary status and webhook/alert payload of a
successful and a failed release; and the controller's Secret cache holds digests, never values."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flaggerpy.canary.controller import ControllerSettings, build_informers
from flaggerpy.canary.reconciler import EngineSettings
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient
from tests.integration.conftest import wait_for
from tests.security.conftest import Tenancy, tenancy

pytestmark = pytest.mark.asyncio(loop_scope="module")

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode()
SEEDS = {
    "prometheus token": "seed-prom-token-a1b2c3",
    "prometheus password": "seed-prom-password-d4e5f6",
    "datadog api key": "seed-dd-api-11aa",
    "datadog application key": "seed-dd-app-22bb",
    "dynatrace token": "seed-dt-token-33cc",
    "graphite password": "seed-graphite-pw-44dd",
    "influxdb token": "seed-influx-token-55ee",
    "newrelic query key": "seed-nr-query-66ff",
    "splunk token": "seed-sf-token-77aa",
    "cloudwatch secret key": "seed-aws-secret-88bb",
    "stackdriver private key": _PEM.splitlines()[5],
    "alert token": "seed-alert-token-0a9b8c",
    "alert address path": "seed-alert-path-7d6e5f",
    "tracked secret": "seed-tracked-value-4c3b2a",
}
NS = "tenant-secrets"


async def backend(request: web.Request) -> web.StreamResponse:
    """Prometheus (one sample of 1), the chat service and the event webhook: all say yes."""
    if request.path.startswith("/api/v1/query"):
        return web.json_response({"status": "success", "data": {
            "resultType": "vector", "result": [{"metric": {}, "value": [time.time(), "1"]}]}})
    return web.json_response({"ok": True})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(module_tmp: Path) -> AsyncIterator[Tenancy]:
    async with tenancy(module_tmp, {"backend": backend}) as t:
        yield t


# The headers credentials are meant to travel in, to the service they are for.
CREDENTIAL_HEADERS = {"authorization", "dd-api-key", "dd-application-key", "x-query-key", "x-sf-token"}


def bodies(tenants: Tenancy) -> str:
    """What the fake servers were sent as payloads: bodies and headers, minus the credential headers."""
    seen = [{"body": s.body, "headers": {k: v for k, v in s.headers.items() if k.lower() not in CREDENTIAL_HEADERS}}
            for s in tenants.servers["backend"].seen]
    return json.dumps(seen)


# Provider type → (Secret data, extra provider fields, query): each fails against the Prometheus-shaped backend.
OTHER_PROVIDERS: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "datadog": ({"datadog_api_key": SEEDS["datadog api key"],
                 "datadog_application_key": SEEDS["datadog application key"]}, {}, "avg:x{*}"),
    "dynatrace": ({"dynatrace_token": SEEDS["dynatrace token"]}, {}, "builtin:x"),
    "graphite": ({"username": "reader", "password": SEEDS["graphite password"]}, {}, "x.y"),
    "influxdb": ({"token": SEEDS["influxdb token"], "org": "tenant"}, {}, 'from(bucket: "x")'),
    "newrelic": ({"newrelic_account_id": "100", "newrelic_query_key": SEEDS["newrelic query key"]}, {}, "SELECT 1"),
    "splunk": ({"sf_token_key": SEEDS["splunk token"]}, {}, "data('x').publish()"),
    "cloudwatch": ({"aws_access_key_id": "AKIATENANT", "aws_secret_access_key": SEEDS["cloudwatch secret key"]},
                   {"region": "us-east-1"}, '[{"Id": "q", "Expression": "1"}]'),
}


async def test_no_secret_value_appears_anywhere_a_release_reports(tenants: Tenancy) -> None:
    url = tenants.servers["backend"].url
    await tenants.namespace(NS)
    await tenants.secret(NS, "prom-token", {"token": SEEDS["prometheus token"]})
    await tenants.secret(NS, "prom-basic", {"username": "reader", "password": SEEDS["prometheus password"]})
    await tenants.secret(NS, "chat", {"address": f"{url}/{SEEDS['alert address path']}",
                                      "token": SEEDS["alert token"]})
    await tenants.secret(NS, "app-config", {"level": SEEDS["tracked secret"]})
    for name, secret in (("with-token", "prom-token"), ("with-basic", "prom-basic")):
        await tenants.template(NS, name, {"type": "prometheus", "address": url, "secretRef": {"name": secret}},
                               query='sum(up{namespace="{{ namespace }}"})')
    for kind, (data, extra, query) in OTHER_PROVIDERS.items():
        await tenants.secret(NS, f"{kind}-creds", data)
        await tenants.template(NS, kind, {"type": kind, "address": url, "secretRef": {"name": f"{kind}-creds"},
                                          **extra}, query=query)
    key_file = json.dumps({"type": "service_account", "client_email": "tenant@example.iam.gserviceaccount.com",
                           "private_key": _PEM, "token_uri": f"{url}/token", "project_id": "tenant"})
    await tenants.secret(NS, "stackdriver-creds", {"serviceAccountKey": key_file})
    await tenants.template(NS, "stackdriver", {"type": "stackdriver", "address": url,
                                               "secretRef": {"name": "stackdriver-creds"}}, query="fetch x")
    await tenants.apply("flagger.app", "alertproviders", {
        "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": {"name": "chat", "namespace": NS},
        "spec": {"type": "slack", "channel": "releases", "secretRef": {"name": "chat"}},
    })

    def analysis(bounds: dict[str, float], others: tuple[str, ...] = ()) -> dict[str, object]:
        return {"interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 25,
                "metrics": [{"name": name, "templateRef": {"name": name}, "thresholdRange": bounds}
                            for name in ("with-token", "with-basic", *others)],
                "alerts": [{"name": "chat", "severity": "info", "providerRef": {"name": "chat"}}],
                "webhooks": [{"name": "events", "type": "event", "url": f"{url}/events"},
                             {"name": "gate", "type": "confirm-rollout", "url": f"{url}/gate"}]}

    # The failing release also runs every other provider with credentials: each check fails, none says why in values.
    others = (*OTHER_PROVIDERS, "stackdriver")
    for name, bounds, extra in (("good", {"min": 0}, ()), ("bad", {"max": 0}, others)):
        dep_config = {"secretRef": {"name": "app-config"}}
        await tenants.release(NS, analysis(bounds, extra), name=name, env_from=[dep_config])
    await tenants.wait_phase(NS, "good", ("Succeeded",))
    await tenants.wait_phase(NS, "bad", ("Failed",))
    await wait_for(lambda: any("releases" in s.body for s in tenants.servers["backend"].seen), 10,
                   lambda: "no alert was delivered")
    await wait_for(lambda: any(s.path == "/events" for s in tenants.servers["backend"].seen), 10,
                   lambda: "no event webhook was called")
    # Every provider's failure is recorded in the failed Canary's status.metricHistory (Events name the first).
    failed = {h["name"] for h in tenants.status(NS, "bad").get("metricHistory") or [] if h.get("error")}
    assert set(others) <= failed, failed
    reported = "\n".join([json.dumps(tenants.events(NS)),
                          json.dumps([c.get("status") for c in tenants.sb.cluster.list("flagger.app", "canaries", NS)]),
                          tenants.controller.log(), bodies(tenants)])
    leaked = [what for what, value in SEEDS.items() if value in reported]
    assert not leaked, f"secret values found in what the controller reported: {leaked}"
    # The credentials did reach the services they are for.
    auths = [s.headers.get("Authorization", "") for s in tenants.servers["backend"].seen]
    assert f"Bearer {SEEDS['prometheus token']}" in auths
    assert f"Bearer {SEEDS['alert token']}" in auths


async def test_the_secret_cache_holds_digests_not_values(tenants: Tenancy) -> None:
    await tenants.namespace("tenant-cache")
    await tenants.secret("tenant-cache", "big", {"blob": SEEDS["tracked secret"] * 100})
    settings = ControllerSettings(engine=EngineSettings(config_tracking=True))
    async with KubeClient(kubeconfig=str(tenants.sb.kubeconfig_path)) as kube:
        informers = build_informers(kube, settings)
        secrets = informers[res.SECRETS]
        async with secrets:
            await wait_for(lambda: secrets.has_synced, 10)
            cached = [copy.deepcopy(obj) for _, obj in secrets.store.items()]
    big = next(obj for obj in cached if obj["metadata"]["name"] == "big")
    assert "data" not in big and big["metadata"]["namespace"] == "tenant-cache"
    assert SEEDS["tracked secret"] not in json.dumps(cached)
