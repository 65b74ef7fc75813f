"""Watch lines cut anywhere by the network still decode to the same events; garbage ends the stream, not the
watcher."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from flaggerpy.kube.resources import CONFIGMAPS
from flaggerpy.kube.settings import WatchSettings
from flaggerpy.kube.watch import Watcher
from tests.unit.test_kube_fakeserver import Handler, cm, fake_cluster, listing, stream
from tests.unit.test_kube_watch import ev, summary, take

FAST = WatchSettings(idle_timeout=35, idle_timeout_jitter=0,
                     backoff_initial=0.001, backoff_max=0.005, backoff_jitter=0.0)


def raw(*pieces: bytes) -> Handler:
    """A watch answer written as exactly these pieces (each flushed on its own), then the end of the stream."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.005)  # let the client read each piece as its own chunk
        await response.write_eof()
        return response

    return handler


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(ev(kind, obj)).encode() + b"\n"


async def test_events_split_and_merged_across_chunks_decode_in_order() -> None:
    big = cm("big", 12)
    big["data"] = {"blob": "x" * 200_000}  # spans many network chunks
    two, three, four = line("MODIFIED", cm("a", 11)), line("MODIFIED", big), line("ADDED", cm("b", 13))
    last = json.dumps(ev("MODIFIED", cm("a", 14))).encode()  # the server ends without a final newline
    pieces = (
        two[:7], two[7:] + three[:100], three[100:150_000], three[150_000:] + b"\n" + four, b"\n", last,
    )
    async with fake_cluster() as (script, kube):
        script.then(listing(10, cm("a", 3)), raw(*pieces), stream())
        items = Watcher(kube, CONFIGMAPS, "ns", settings=FAST).events()
        got = await take(items, 6)
        await items.aclose()
    assert summary(got) == [
        ("ADDED", "a@3"), ("LISTED", "10"),
        ("MODIFIED", "a@11"), ("ADDED", "big@12"), ("ADDED", "b@13"), ("MODIFIED", "a@14"),
    ]
    assert len(got[3].object["data"]["blob"]) == 200_000  # type: ignore[union-attr]


async def test_a_line_that_is_not_an_event_reconnects_from_the_last_version() -> None:
    reasons: list[str] = []
    async with fake_cluster() as (script, kube):
        script.then(
            listing(10, cm("a", 3)),
            raw(line("MODIFIED", cm("a", 11)), b"[1, 2]\n", line("MODIFIED", cm("a", 99))),
            stream(ev("MODIFIED", cm("a", 12))),
        )
        watcher = Watcher(kube, CONFIGMAPS, "ns", settings=FAST, on_reconnect=reasons.append)
        items = watcher.events()
        got = await take(items, 4)
        await items.aclose()
    assert summary(got) == [("ADDED", "a@3"), ("LISTED", "10"), ("MODIFIED", "a@11"), ("MODIFIED", "a@12")]
    assert reasons == ["error"]
    assert script.requests[2][2]["resourceVersion"] == "11"
