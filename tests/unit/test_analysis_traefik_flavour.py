"""The ``traefik`` builtin flavour, and a Canary choosing its flavour by annotation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flaggerpy.analysis.builtin import FLAVOUR_ANNOTATION, Flavour
from flaggerpy.apis.flagger import Canary
from tests.unit.test_analysis_checks import answers, check
from tests.unit.test_analysis_fixtures import canary
from tests.unit.test_provider_fake_backend import FakeBackend, running_backend

TRAEFIK_CANARY = 'service=~".+-svc-test-podinfo-canary-[0-9]+@kubernetesgateway"'


@pytest.fixture
async def prom() -> AsyncIterator[FakeBackend]:
    async with running_backend() as backend:
        yield backend


def annotated(flavour: str) -> Canary:
    subject = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}},
                      {"name": "request-duration", "thresholdRange": {"max": 500}}])
    return subject.model_copy(update={"metadata": subject.metadata.model_copy(
        update={"annotations": {FLAVOUR_ANNOTATION: flavour}})})


async def test_traefik_flavour_queries_traefik_service_metrics_of_the_canary_backend(prom: FakeBackend) -> None:
    answers(prom, {"histogram_quantile": "120", "traefik_service_requests_total": "99.5"})
    subject = canary([{"name": "request-success-rate", "thresholdRange": {"min": 99}},
                      {"name": "request-duration", "thresholdRange": {"max": 500}}])
    results = await check(subject, metrics_server=prom.url, builtin_flavour=Flavour.TRAEFIK)
    assert results["request-success-rate"].passed and results["request-duration"].value == 120
    sent = sorted(r.query["query"] for r in prom.requests)
    duration, success = sent
    assert duration.startswith("histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{")
    assert TRAEFIK_CANARY in duration and duration.endswith(" * 1000")
    assert f'traefik_service_requests_total{{{TRAEFIK_CANARY}, code!~"5.*"}}[1m]' in success


async def test_a_canary_annotation_overrides_the_controller_flavour(prom: FakeBackend) -> None:
    answers(prom, {"histogram_quantile": "120", "traefik_service_requests_total": "100"})
    results = await check(annotated("traefik"), metrics_server=prom.url, builtin_flavour=Flavour.ISTIO)
    assert results["request-success-rate"].passed
    assert all("traefik_service_" in r.query["query"] for r in prom.requests)


async def test_an_unknown_annotated_flavour_is_an_error_naming_the_annotation(prom: FakeBackend) -> None:
    results = await check(annotated("linkerd"), metrics_server=prom.url)
    error = results["request-success-rate"].error or ""
    assert f"metadata.annotations[{FLAVOUR_ANNOTATION}]" in error and "'linkerd' is unknown" in error
    assert not prom.requests
