"""Watch semantics: initial events, replay from a resourceVersion, 410 Gone, bookmarks, selectors, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox, ServerSettings

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    settings = ServerSettings(bookmark_interval=0.05, idle_check_interval=0.05)
    async with Sandbox(dataplane=False, workloads=False, history_size=20, settings=settings) as sandbox:
        yield sandbox


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sb.url) as session:
        yield session


async def post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(path, json=body) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def events(http: aiohttp.ClientSession, query: str, count: int, path: str = CM) -> list[dict[str, Any]]:
    """Read ``count`` watch events (or fewer if the server ends the stream)."""
    seen: list[dict[str, Any]] = []
    async with http.get(f"{path}?watch=true&{query}") as resp:
        assert resp.status == 200
        async for line in resp.content:
            seen.append(json.loads(line))
            if len(seen) >= count:
                break
    return seen


async def test_watch_without_version_starts_with_current_objects_then_live_changes(
    http: aiohttp.ClientSession,
) -> None:
    await post(http, CM, {"metadata": {"name": "a"}})
    reader = asyncio.create_task(events(http, "", 2))
    await asyncio.sleep(0.05)
    await post(http, CM, {"metadata": {"name": "b"}})
    seen = await asyncio.wait_for(reader, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_replays_events_after_a_resource_version(http: aiohttp.ClientSession) -> None:
    created = await post(http, CM, {"metadata": {"name": "a"}})
    rv = created["metadata"]["resourceVersion"]
    async with http.patch(
        f"{CM}/a", json={"data": {"k": "v"}}, headers={"Content-Type": "application/merge-patch+json"}
    ) as resp:
        assert resp.status == 200
    async with http.delete(f"{CM}/a") as resp:
        assert resp.status == 200
    seen = await asyncio.wait_for(events(http, f"resourceVersion={rv}", 2), 5)
    assert [e["type"] for e in seen] == ["MODIFIED", "DELETED"]
    assert seen[0]["object"]["data"] == {"k": "v"}


async def test_watch_from_a_compacted_version_gets_410_in_stream(http: aiohttp.ClientSession) -> None:
    for i in range(60):
        await post(http, CM, {"metadata": {"name": f"c{i}"}})
    seen = await asyncio.wait_for(events(http, "resourceVersion=1", 5), 5)
    assert len(seen) == 1
    assert seen[0]["type"] == "ERROR"
    status = seen[0]["object"]
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert "too old resource version" in status["message"]


async def test_bookmarks_carry_the_current_resource_version(http: aiohttp.ClientSession) -> None:
    created = await post(http, CM, {"metadata": {"name": "a"}})
    seen = await asyncio.wait_for(
        events(http, f"resourceVersion={created['metadata']['resourceVersion']}&allowWatchBookmarks=true", 2), 5
    )
    assert [e["type"] for e in seen] == ["BOOKMARK", "BOOKMARK"]
    assert seen[0]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_timeout_seconds_ends_the_stream(http: aiohttp.ClientSession) -> None:
    seen = await asyncio.wait_for(events(http, "resourceVersion=0&timeoutSeconds=1", 100), 5)
    assert seen == []


async def test_label_selector_watch_sees_objects_leave_and_enter(http: aiohttp.ClientSession) -> None:
    created = await post(http, CM, {"metadata": {"name": "a", "labels": {"app": "x"}}})
    rv = created["metadata"]["resourceVersion"]
    reader = asyncio.create_task(events(http, f"resourceVersion={rv}&labelSelector=app%3Dx", 2))
    await asyncio.sleep(0.05)
    for labels in ({"app": "y"}, {"app": "x"}):
        async with http.patch(
            f"{CM}/a", json={"metadata": {"labels": labels}}, headers={"Content-Type": "application/merge-patch+json"}
        ) as resp:
            assert resp.status == 200
    seen = await asyncio.wait_for(reader, 5)
    assert [e["type"] for e in seen] == ["DELETED", "ADDED"]


async def test_namespaced_watch_ignores_other_namespaces(http: aiohttp.ClientSession) -> None:
    await post(http, "/api/v1/namespaces", {"metadata": {"name": "other"}})
    reader = asyncio.create_task(events(http, "resourceVersion=0", 1))
    await asyncio.sleep(0.05)
    await post(http, "/api/v1/namespaces/other/configmaps", {"metadata": {"name": "elsewhere"}})
    await post(http, CM, {"metadata": {"name": "here"}})
    seen = await asyncio.wait_for(reader, 5)
    assert seen[0]["object"]["metadata"]["name"] == "here"


async def test_cluster_wide_watch_sees_every_namespace(http: aiohttp.ClientSession) -> None:
    await post(http, "/api/v1/namespaces", {"metadata": {"name": "other"}})
    reader = asyncio.create_task(events(http, "", 2, path="/api/v1/configmaps"))
    await asyncio.sleep(0.05)
    await post(http, "/api/v1/namespaces/other/configmaps", {"metadata": {"name": "x"}})
    await post(http, CM, {"metadata": {"name": "y"}})
    seen = await asyncio.wait_for(reader, 5)
    assert {e["object"]["metadata"]["namespace"] for e in seen} == {"other", "default"}


async def test_in_process_changes_see_every_write(sb: Sandbox) -> None:
    received = []

    async def consume() -> None:
        async for change in sb.cluster.changes():
            received.append(change)
            if len(received) == 2:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    created = await sb.cluster.create("", "configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    updated = await sb.cluster.patch("", "configmaps", "default", "a", {"data": {"k": "v"}})
    await asyncio.wait_for(consumer, 5)
    assert [(c.type, c.group, c.plural) for c in received] == [
        ("ADDED", "", "configmaps"),
        ("MODIFIED", "", "configmaps"),
    ]
    assert received[1].object["data"] == {"k": "v"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    received[1].object["data"]["k"] = "mutated"
    assert sb.cluster.get("", "configmaps", "default", "a")["data"] == {"k": "v"}, "changes are copies"


async def test_in_process_changes_can_be_limited_to_some_resources(sb: Sandbox) -> None:
    stream = sb.cluster.changes([("", "secrets")])
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await sb.cluster.create("", "configmaps", {"metadata": {"name": "skipped", "namespace": "default"}})
    await sb.cluster.create("", "secrets", {"metadata": {"name": "seen", "namespace": "default"}})
    change = await asyncio.wait_for(first, 5)
    assert (change.plural, change.object["metadata"]["name"]) == ("secrets", "seen")
    await stream.aclose()


async def test_a_batch_window_delivers_a_burst_whole_and_in_order() -> None:
    settings = ServerSettings(watch_batch_window=0.05)
    async with Sandbox(dataplane=False, workloads=False, settings=settings) as sandbox, \
            aiohttp.ClientSession(base_url=sandbox.url) as http:
        await post(http, CM, {"metadata": {"name": "first"}})
        reader = asyncio.create_task(events(http, "resourceVersion=1", 21))
        await asyncio.sleep(0.05)
        await asyncio.gather(*(post(http, CM, {"metadata": {"name": f"burst-{i:02d}"}}) for i in range(20)))
        seen = await asyncio.wait_for(reader, 5)
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert versions == sorted(versions) and len(set(versions)) == 21
    assert {e["object"]["metadata"]["name"] for e in seen} == {"first"} | {f"burst-{i:02d}" for i in range(20)}


async def test_streaming_list_sends_current_objects_then_an_initial_events_end_bookmark(
    http: aiohttp.ClientSession,
) -> None:
    # client-go's WatchList (on by default since 1.35, so Traefik 3.7 uses it): no LIST, a watch that starts with
    # the current state and says where it ends.
    await post(http, CM, {"metadata": {"name": "a"}})
    created = await post(http, CM, {"metadata": {"name": "b"}})
    query = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion="
    seen = await asyncio.wait_for(events(http, query, 3), 5)
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in seen] == [
        ("ADDED", "a"), ("ADDED", "b"), ("BOOKMARK", None)]
    end = seen[2]["object"]["metadata"]
    assert end["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(end["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])


async def test_streaming_list_needs_not_older_than_and_bookmarks(http: aiohttp.ClientSession) -> None:
    for query, field in (("sendInitialEvents=true&allowWatchBookmarks=true", "resourceVersionMatch"),
                         ("sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "allowWatchBookmarks")):
        # Refused before the stream starts, with the HTTP status, as kube-apiserver does (hack/fidelity.py).
        async with http.get(f"{CM}?watch=true&{query}") as resp:
            assert resp.status == 422
            status = await resp.json()
        assert status["details"]["causes"][0]["field"] == field
