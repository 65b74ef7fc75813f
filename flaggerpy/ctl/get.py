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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from flaggerpy.apis.flagger import Canary
from flaggerpy.ctl import common
from flaggerpy.ctl.render import (
    canaries_plain,
    canaries_plain_aligned,
    canaries_rich,
    canary_cells,
    canary_headers,
    canary_widths,
    plain_line,
)
from flaggerpy.ctl.view import Row, events_by_canary, parse_canary, row_from, target_key
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import Forbidden, NotFound
from flaggerpy.kube.informer import Informer
from flaggerpy.kube.settings import WatchSettings

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


# The CLI waits for a person: after the API comes back, resume within seconds, not the controller's 30 s; and a
# connection that went silent without closing (a vanished host, a dropped route) is given up within 25 s.
WATCH_SETTINGS = WatchSettings(backoff_max=5.0, idle_timeout=20.0, idle_timeout_jitter=5.0)
# A status write and its Event arrive as two changes on two watches: a row is printed once no change came for
# SETTLE_SECONDS (at most SETTLE_MAX_SECONDS after the first), so one step shows as one row.
SETTLE_SECONDS = 0.5
SETTLE_MAX_SECONDS = 2.0

Targets = dict[tuple[str, str, str], Obj]


def build_rows(canaries: Iterable[Obj], events: Iterable[Obj], targets: Targets | None = None,
               parse: Callable[[Obj], Canary | None] = parse_canary) -> list[Row]:
    """One row per canary, sorted by namespace and name; ``parse``: how a Canary object is read (validated)."""
    by_canary = events_by_canary(events)
    rows = []
    for obj in canaries:
        meta = obj.get("metadata") or {}
        lines = by_canary.get((str(meta.get("namespace") or ""), str(meta.get("name") or "")), [])
        rows.append(row_from(obj, parse(obj), lines, targets))
    return sorted(rows, key=lambda r: (r.namespace, r.name))


async def fetch_targets(kube: KubeClient, canaries: Iterable[Obj]) -> Targets:
    """The targets of the suspended canaries (only their rows say whether a new revision waits)."""
    targets: Targets = {}
    for obj in canaries:
        kind, namespace, name = key = target_key(obj)
        resource = common.TARGETS.get(kind)
        if not (obj.get("spec") or {}).get("suspend") or resource is None or not name:
            continue
        with contextlib.suppress(NotFound, Forbidden):
            targets[key] = await kube.get(resource, name, namespace)
    return targets


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
        rows = build_rows(canaries, events, await fetch_targets(kube, canaries))
        if tty:
            console = Console(file=out)
            console.print(canaries_rich(rows, namespace is None, datetime.now(UTC), console.width))
        elif rows:
            out.write(canaries_plain(rows, namespace is None))
        else:
            scope = f"namespace {namespace}" if namespace else "any namespace"
            sys.stderr.write(f"No canaries found in {scope}.\n")
    return common.EXIT_OK


@dataclass
class Connection:
    """Whether the watches reach the API server: since when they do not, and when data last arrived."""

    last_update: datetime = field(default_factory=lambda: datetime.now(UTC))
    lost_since: datetime | None = None
    cause: str = ""

    def lost(self, reason: str) -> None:
        """A watch broke; the first break starts the outage."""
        if self.lost_since is None:
            self.lost_since = datetime.now(UTC)
            self.cause = reason

    def connected(self) -> None:
        """A watch stream is open again."""
        self.lost_since = None
        self.last_update = datetime.now(UTC)

    def updated(self) -> None:
        """A change arrived."""
        self.last_update = datetime.now(UTC)

    def notice(self) -> str:
        """The line saying the connection is lost, empty while connected."""
        if self.lost_since is None:
            return ""
        return (f"connection to the API server lost at {_clock(self.lost_since)} (last update "
                f"{_clock(self.last_update)}); reconnecting...")


def _clock(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


class _Watches:
    """The informers behind ``get --watch``: canaries, their Events and the workloads they target."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self.changed = asyncio.Event()
        self.connection = Connection()
        self.canaries = Informer(kube, res.CANARIES, namespace, settings=WATCH_SETTINGS)
        self.events = Informer(kube, res.EVENTS, namespace, field_selector=CANARY_EVENTS, settings=WATCH_SETTINGS)
        self.targets = {kind: Informer(kube, resource, namespace, settings=WATCH_SETTINGS)
                        for kind, resource in common.TARGETS.items()}
        self.all = [self.canaries, self.events, *self.targets.values()]
        # Each canary parsed once per resourceVersion: validating a spec costs ~0.5 ms, and every change redraws
        # every row (1,000 canaries would hold the event loop half a second per redraw).
        self._parsed: dict[tuple[str, str], tuple[str, Canary | None]] = {}
        for informer in self.all:
            informer.add_handlers(self._mark, self._mark, self._mark)
            informer.observe_reconnects(self._lost)
            informer.observe_connected(self._connected)

    def _mark(self, *_: Any) -> None:
        self.connection.updated()
        self.changed.set()

    def _lost(self, resource: str, reason: str) -> None:
        if reason != "gone":  # 410 Gone is answered by the server: it is up, only the history is short
            self.connection.lost(reason)
            self.changed.set()

    def _connected(self) -> None:
        if self.connection.lost_since is not None:
            self.connection.connected()
            self.changed.set()

    def rows(self) -> list[Row]:
        """The rows as the caches have them now."""
        targets: Targets = {}
        for kind, informer in self.targets.items():
            for obj in informer.store.objects():
                meta = obj.get("metadata") or {}
                targets[(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj
        # Rebuilt on every call from the canaries cached now, so deleted ones do not stay in it.
        parsed, self._parsed = self._parsed, {}

        def parse(obj: Obj) -> Canary | None:
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            version = str(meta.get("resourceVersion") or "")
            hit = parsed.get(key)
            canary = hit[1] if hit is not None and version and hit[0] == version else parse_canary(obj)
            self._parsed[key] = (version, canary)
            return canary

        return build_rows(self.canaries.store.objects(), self.events.store.objects(), targets, parse)


async def watch(kube: KubeClient, namespace: str | None, out: TextIO, tty: bool, err: TextIO | None = None) -> int:
    """Follow canaries and their Events until cancelled (Ctrl-C: exit code 130, as for any interrupted command).

    A lost connection to the API server is shown (on the terminal under the table, else on ``err``) with the time
    of the last update, while the watches reconnect; the notice goes once they are back.
    """
    watches = _Watches(kube, namespace)
    async with contextlib.AsyncExitStack() as stack:
        for informer in watches.all:
            await stack.enter_async_context(informer)
        await asyncio.gather(*(informer.wait_for_sync() for informer in watches.all))
        if tty:
            await _live(watches, namespace is None, out)
        else:
            await _stream(watches, namespace is None, out, err or sys.stderr)
    return common.EXIT_OK


async def _live(watches: _Watches, all_ns: bool, out: TextIO) -> None:
    # The caller decided this is a terminal; rich would otherwise hold the live view back until it stops.
    console = Console(file=out, force_terminal=True)

    def table() -> Any:
        view = canaries_rich(watches.rows(), all_ns, datetime.now(UTC), console.width)
        notice = watches.connection.notice()
        return Group(view, Text(notice, style="bold red")) if notice else view

    with Live(table(), console=console, auto_refresh=False) as live:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (Ctrl-C) that lands as it fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_REFRESH_SECONDS):
                    await watches.changed.wait()
            watches.changed.clear()
            live.update(table(), refresh=True)


async def _settle(changed: asyncio.Event) -> None:
    """Return once ``changed`` stayed unset for SETTLE_SECONDS, or SETTLE_MAX_SECONDS after the call."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE_MAX_SECONDS):
            while True:
                changed.clear()
                try:
                    async with asyncio.timeout(SETTLE_SECONDS):
                        await changed.wait()
                except TimeoutError:
                    return
    changed.clear()


async def _stream(watches: _Watches, all_ns: bool, out: TextIO, err: TextIO) -> None:
    """Print the table once, then each row again whenever what it shows changes, aligned with the header."""
    rows = watches.rows()
    widths = canary_widths(rows, all_ns)
    shown = {(r.namespace, r.name): canary_cells(r, all_ns) for r in rows}
    if rows:
        out.write(canaries_plain_aligned(rows, all_ns, widths))
        out.flush()
    notice = ""
    while True:
        await watches.changed.wait()
        await _settle(watches.changed)
        if watches.connection.notice() != notice:
            notice = watches.connection.notice()
            err.write(f"{notice}\n" if notice else f"reconnected to the API server at "
                                                   f"{_clock(watches.connection.last_update)}\n")
            err.flush()
        for current in watches.rows():
            cells = canary_cells(current, all_ns)
            if shown.get((current.namespace, current.name)) == cells:
                continue
            if not shown:
                # The first canary of an empty listing: print the header once, as kubectl get -w does.
                widths = canary_widths([current], all_ns)
                out.write(plain_line(canary_headers(all_ns), widths))
            shown[(current.namespace, current.name)] = cells
            out.write(plain_line(cells, widths))
        out.flush()
