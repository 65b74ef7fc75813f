"""A tenant's template cannot stall the controller: a hostile MetricTemplate fails its own check, over budget and
naming ``spec.query``, while another tenant's canary progresses and ``/healthz`` answers throughout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.security.conftest import Tenancy, healthz, tenancy

pytestmark = pytest.mark.asyncio(loop_scope="module")

WIDE = "x" * 150
# Go's text/template: four nested loops (5e8 iterations unbounded), and thirty doublings of a string.
NESTED_LOOPS = ("{{ range $a := 150 }}{{ range $b := 150 }}{{ range $c := 150 }}{{ range $d := 150 }}"
                "{{ target }}{{ end }}{{ end }}{{ end }}{{ end }}")
DOUBLINGS = "{{ $x := variables.wide }}" + '{{ $x = printf "%s%s" $x $x }}' * 30 + "{{ $x }}"
# The same loops in the block syntax the jinja2-based renderer accepted.
JINJA_LOOPS = ("{{% for a in variables.wide %}}{{% for b in variables.wide %}}{{% for c in variables.wide %}}"
               "{{% for d in variables.wide %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}")


async def prometheus(_: web.Request) -> web.StreamResponse:
    """A Prometheus whose every query returns one sample of 1."""
    return web.json_response({"status": "success", "data": {"resultType": "vector",
                                                            "result": [{"metric": {}, "value": [time.time(), "1"]}]}})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(module_tmp: Path) -> AsyncIterator[Tenancy]:
    async with tenancy(module_tmp, {"prometheus": prometheus}) as t:
        yield t


def analysis(template: str, **extra: object) -> dict[str, object]:
    return {"interval": "1s", "threshold": 1, "maxWeight": 50, "stepWeight": 25, **extra,
            "metrics": [{"name": template, "templateRef": {"name": template}, "thresholdRange": {"min": 0},
                         "templateVariables": {"wide": WIDE}}]}


async def test_a_hostile_template_fails_alone_and_the_controller_stays_responsive(tenants: Tenancy) -> None:
    address = tenants.servers["prometheus"].url
    await tenants.namespace("tenant-hostile")
    await tenants.namespace("tenant-normal")
    for name, query in (("loops", NESTED_LOOPS), ("doublings", DOUBLINGS), ("jinja", JINJA_LOOPS)):
        await tenants.template("tenant-hostile", name, {"type": "prometheus", "address": address}, query=query)
    await tenants.template("tenant-normal", "up", {"type": "prometheus", "address": address},
                           query='sum(up{namespace="{{ namespace }}"})')
    statuses: list[int | str] = []
    stop = asyncio.Event()

    async def probe_health() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    statuses.append(await healthz(tenants.controller.port, session))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    statuses.append(type(exc).__name__)
                await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe_health())
    try:
        await tenants.release("tenant-hostile", analysis("loops"), name="loops")
        await tenants.release("tenant-hostile", analysis("doublings"), name="doublings")
        await tenants.release("tenant-hostile", analysis("jinja"), name="jinja")
        await tenants.release("tenant-normal", analysis("up"))
        for name in ("loops", "doublings"):
            message = await tenants.wait_event("tenant-hostile", f"Metric query failed for {name}")
            assert f"spec.query of MetricTemplate tenant-hostile/{name}: query template over budget" in message
        await tenants.wait_event("tenant-hostile", "Metric query failed for jinja")
        await tenants.wait_phase("tenant-normal", "podinfo", ("Succeeded",))
        for name in ("loops", "doublings", "jinja"):
            await tenants.wait_phase("tenant-hostile", name, ("Failed",))
    finally:
        stop.set()
        await prober
    # Only loopback answered: a stalled loop shows as timeouts here.
    assert statuses and all(status == 200 for status in statuses), statuses
