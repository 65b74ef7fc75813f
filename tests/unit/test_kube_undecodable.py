"""One hostile object never kills an informer: undecodable objects are skipped and counted, a dying watch loop is
restarted, and an informer that keeps dying is reported dead (design.md invariant 8)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from flaggerpy.kube import jsonio
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.resources import CONFIGMAPS
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import resource_version
from tests.integration.conftest import wait_for
from tests.unit.test_kube_fakeserver import Handler, cm, fake_cluster, listing, stream

FAST = WatchSettings(idle_timeout=35, idle_timeout_jitter=0, backoff_initial=0.001, backoff_max=0.005,
                     backoff_jitter=0.0, crash_loop_limit=3)
DEPTH = 5000  # beyond orjson's 1,024 levels and the standard library's recursion limit


def deep_cm(name: str, rv: int) -> str:
    """A ConfigMap whose annotations nest DEPTH levels deep, as JSON text (json.dumps itself cannot write it)."""
    head = json.dumps(cm(name, rv))[:-1]
    return head + ', "extra": ' + "[" * DEPTH + "]" * DEPTH + "}"


def raw(body: str, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body.encode(), content_type=content_type)

    return handler


def raw_stream(*lines: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for line in lines:
            await response.write(line.encode() + b"\n")
        await response.write_eof()
        return response

    return handler


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def test_loads_names_too_deep_and_a_collection_leaves_out_only_that_item() -> None:
    body = ('{"kind":"ConfigMapList","metadata":{"resourceVersion":"9"},"items":['
            + json.dumps(cm("a", 1)) + "," + deep_cm("evil", 2) + "," + json.dumps(cm("b", 3)) + "]}")
    try:
        jsonio.loads(body.encode())
    except jsonio.Undecodable:
        pass
    else:
        raise AssertionError("a 5,000-level document must be refused as Undecodable")
    doc, skipped = jsonio.loads_collection(body.encode())
    assert skipped == 1
    assert [item["metadata"]["name"] for item in doc["items"]] == ["a", "b"]
    assert doc["metadata"] == {"resourceVersion": "9"} and doc["kind"] == "ConfigMapList"


async def test_informer_skips_undecodable_objects_in_lists_and_watches_and_counts_them() -> None:
    list_body = ('{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":['
                 + json.dumps(cm("a", 1)) + "," + deep_cm("evil", 2) + "]}")
    async with fake_cluster() as (script, kube):
        script.then(
            raw(list_body),
            raw_stream('{"type":"MODIFIED","object":' + deep_cm("evil", 11) + "}",
                       json.dumps(event("ADDED", cm("b", 12)))),
            stream(event("MODIFIED", cm("a", 13))),
        )
        counted: list[tuple[str, int]] = []
        kube.add_undecodable_observer(lambda resource, n: counted.append((resource, n)))
        informer = Informer(kube, CONFIGMAPS, "ns", settings=FAST)
        with capture_logs() as logs:
            async with informer:
                await wait_for(lambda: resource_version(informer.store.get_by_name("ns", "a") or {}) == "13")
                assert informer.alive
        assert sorted(informer.store.keys()) == ["ns/a", "ns/b"]
        assert counted == [("configmaps", 1), ("configmaps", 1)], "one from the list, one from the watch"
        warnings = [e for e in logs if e["event"].startswith("skipping objects that cannot be decoded")]
        assert len(warnings) == 1, "logged once, then only counted"
        assert informer.crashes == 0


async def test_a_dying_watch_loop_is_restarted_and_a_crash_loop_is_reported_dead() -> None:
    failures = {"left": 1}

    def fragile(obj: dict[str, Any]) -> list[str]:
        # An index function that breaks on some object: the exception escapes the watch loop.
        if obj["metadata"]["name"] == "boom" and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("indexer bug")
        return [obj["metadata"]["name"]]

    async with fake_cluster() as (script, kube):
        script.then(listing(10, cm("a", 1)), stream(event("ADDED", cm("boom", 11))),
                    listing(20, cm("a", 1), cm("boom", 11)), stream())
        informer = Informer(kube, CONFIGMAPS, "ns", settings=FAST, indexers={"name": fragile})
        async with informer:
            await wait_for(lambda: informer.store.get_by_name("ns", "boom") is not None)
            assert informer.crashes == 1 and informer.alive, "restarted from a relist, and alive"

        failures["left"] = 1000
        script.then(*[h for _ in range(10) for h in (listing(30, cm("boom", 11)), stream())])
        informer = Informer(kube, CONFIGMAPS, "ns", settings=FAST, indexers={"name": fragile})
        async with informer:
            await wait_for(lambda: not informer.alive)
            assert informer.crashes >= FAST.crash_loop_limit
