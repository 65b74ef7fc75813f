"""``flaggerpy get canaries [-A | -n NS] [--watch]``: a table of canaries and how far each release is.

On a terminal the table is drawn with rich; otherwise it is a plain, stable text table for scripts. ``--watch``
follows the Canaries and their Events through informers (list once, then watch streams; no polling) and redraws
on every change until Ctrl-C; without a terminal it prints the rows that changed, like ``kubectl get -w``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from flaggerpy.ctl import common
from flaggerpy.ctl.render import canaries_plain, canaries_rich, canary_cells
from flaggerpy.ctl.view import Row, row
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.informer import Informer

RESOURCE_NAMES = ("canaries", "canary", "canaries.flagger.app", "cd")
CANARY_EVENTS = "involvedObject.kind=Canary"
# Ages in the live view move even when nothing changes in the cluster; redraw at least this often.
LIVE_REFRESH_SECONDS = 1.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``flaggerpy get``."""
    parser.add_argument("resource", choices=RESOURCE_NAMES, metavar="canaries", help="what to list: canaries")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list canaries in every namespace")
    common.add_cluster_args(parser)
    parser.add_argument("-w", "--watch", action="store_true", help="keep the table live until Ctrl-C")
    parser.add_argument("--output-plain", action="store_true", help="plain text even on a terminal")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``flaggerpy get``."""
    if args.all_namespaces and args.namespace:
        return common.refuse(["-A/--all-namespaces and -n/--namespace cannot be used together"])
    return common.run_async(lambda: get(args, sys.stdout), args=args)


def build_rows(canaries: Iterable[Obj], events: Iterable[Obj]) -> list[Row]:
    """One row per canary, sorted by namespace and name."""
    event_list = list(events)
    rows = [row(obj, event_list) for obj in canaries]
    return sorted(rows, key=lambda r: (r.namespace, r.name))


async def get(args: argparse.Namespace, out: TextIO) -> int:
    """List (or watch) canaries and print them to ``out``."""
    namespace = None if args.all_namespaces else common.namespace_of(args)
    tty = out.isatty() and not args.output_plain
    async with common.client(args) as kube:
        canaries = await common.list_canaries(kube, namespace)
        if args.watch:
            # The list above fails fast (unreachable, forbidden, no CRD); informers would retry quietly forever.
            return await watch(kube, namespace, out, tty)
        events, _ = await kube.list(res.EVENTS, namespace, field_selector=CANARY_EVENTS)
        rows = build_rows(canaries, events)
        if tty:
            console = Console(file=out)
            console.print(canaries_rich(rows, namespace is None, datetime.now(UTC), console.width))
        elif rows:
            out.write(canaries_plain(rows, namespace is None))
        else:
            scope = f"namespace {namespace}" if namespace else "any namespace"
            sys.stderr.write(f"No canaries found in {scope}.\n")
    return common.EXIT_OK


async def watch(kube: KubeClient, namespace: str | None, out: TextIO, tty: bool) -> int:
    """Follow canaries and their Events until cancelled (Ctrl-C: exit code 130, as for any interrupted command)."""
    changed = asyncio.Event()

    def mark(*_: Any) -> None:
        changed.set()

    canaries = Informer(kube, res.CANARIES, namespace)
    events = Informer(kube, res.EVENTS, namespace, field_selector=CANARY_EVENTS)
    for informer in (canaries, events):
        informer.add_handlers(mark, mark, mark)
    async with canaries, events:
        await asyncio.gather(canaries.wait_for_sync(), events.wait_for_sync())
        if tty:
            await _live(canaries, events, namespace is None, out, changed)
        else:
            await _stream(canaries, events, namespace is None, out, changed)
    return common.EXIT_OK


async def _live(canaries: Informer, events: Informer, all_ns: bool, out: TextIO, changed: asyncio.Event) -> None:
    # The caller decided this is a terminal; rich would otherwise hold the live view back until it stops.
    console = Console(file=out, force_terminal=True)

    def table() -> Any:
        rows = build_rows(canaries.store.objects(), events.store.objects())
        return canaries_rich(rows, all_ns, datetime.now(UTC), console.width)

    with Live(table(), console=console, auto_refresh=False) as live:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (Ctrl-C) that lands as it fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_REFRESH_SECONDS):
                    await changed.wait()
            changed.clear()
            live.update(table(), refresh=True)


async def _stream(canaries: Informer, events: Informer, all_ns: bool, out: TextIO, changed: asyncio.Event) -> None:
    """Print the table once, then each row again whenever what it shows changes."""
    rows = build_rows(canaries.store.objects(), events.store.objects())
    shown = {(r.namespace, r.name): canary_cells(r, all_ns) for r in rows}
    if rows:
        out.write(canaries_plain(rows, all_ns))
        out.flush()
    while True:
        await changed.wait()
        changed.clear()
        for current in build_rows(canaries.store.objects(), events.store.objects()):
            cells = canary_cells(current, all_ns)
            if shown.get((current.namespace, current.name)) == cells:
                continue
            if not shown:
                # The first canary of an empty listing: print the header once, as kubectl get -w does.
                out.write(canaries_plain([], all_ns))
            shown[(current.namespace, current.name)] = cells
            out.write("   ".join(cells).rstrip() + "\n")
        out.flush()
