"""``flaggerpy status NAME [-n NS] [--watch]``: the timeline of one canary's current release.

Shows the phase and progress, the conditions, each analysis step with its weight (or iteration) and the metric
values measured at it (from ``status.metricHistory``), and the Canary's Events since the release started, oldest
first, with their counts. ``--watch`` follows the Canary and its Events and redraws on every change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flaggerpy.apis.annotations import handled
from flaggerpy.apis.flagger import Strategy
from flaggerpy.ctl import common
from flaggerpy.ctl.render import plain_table
from flaggerpy.ctl.view import (
    ATTEMPT_STARTS,
    RESTART,
    EventLine,
    MetricValue,
    StepView,
    attempts,
    count,
    current_release,
    events_for,
    format_time,
    parse_canary,
    parse_time,
    progress,
    steps_of,
    target_key,
    waiting_revision,
)
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import Forbidden, NotFound
from flaggerpy.kube.informer import Informer


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``flaggerpy status``."""
    parser.add_argument("name", help="name of the Canary")
    common.add_cluster_args(parser)
    parser.add_argument("-w", "--watch", action="store_true", help="redraw on every change until Ctrl-C")
    parser.add_argument("--output-plain", action="store_true", help="plain text even on a terminal")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``flaggerpy status``."""
    return common.run_async(lambda: show(args, sys.stdout), args=args)


@dataclass(frozen=True)
class Section:
    """A titled table of the report."""

    title: str
    headers: Sequence[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Report:
    """Everything ``status`` prints: a summary (label, value) and the sections."""

    summary: list[tuple[str, str]]
    sections: list[Section]


def _metric(metric: MetricValue) -> str:
    if metric.value is not None:
        shown = f"{metric.value:g}"
    elif metric.error:
        # The query failed: say why, not "no data", which would send the user looking at the canary's traffic.
        shown = f"({metric.error})"
    else:
        shown = "no data"
    return f"{metric.name}={shown} {'ok' if metric.passed else 'FAIL'}"


def _steps_section(steps: list[StepView], by_iteration: bool) -> Section:
    rows = [[str(i), str(s.iteration) if by_iteration else f"{s.weight}%", format_time(s.time),
             ", ".join(_metric(m) for m in s.metrics)] for i, s in enumerate(steps, 1)]
    return Section("Analysis steps", ("STEP", "ITERATION" if by_iteration else "WEIGHT", "TIME", "METRICS"), rows)


def _events_section(lines: list[EventLine], title: str = "Events") -> Section:
    rows = [[format_time(e.time), e.type, e.reason, str(e.count), e.message] for e in lines]
    return Section(title, ("TIME", "TYPE", "REASON", "COUNT", "MESSAGE"), rows)


def _ending(lines: list[EventLine], superseded: bool) -> str:
    """How an earlier attempt ended, in the words of its Events."""
    last = lines[-1].message if lines else ""
    if superseded:
        return f"superseded by a new revision (last: {last})"
    aborted = next((e.message for e in lines if "manual abort requested" in e.message), None)
    if aborted is not None:
        return f"aborted: {aborted}"
    return next((e.message for e in reversed(lines) if e.type == "Warning"), last)


def _attempts_section(tries: list[list[EventLine]], status: Mapping[str, Any]) -> Section:
    """One row per earlier attempt of this release: how it started, how it ended, how many steps it measured."""
    rows = []
    for i, (lines, following) in enumerate(itertools.pairwise(tries), 1):
        start = lines[0].time if lines else None
        end = following[0].time if following else None
        superseded = bool(following) and following[0].message.startswith(RESTART)
        rows.append([str(i), format_time(start), lines[0].message if lines else "-",
                     str(len(steps_of(status, start, end))), _ending(lines, superseded)])
    return Section("Earlier attempts of this release (retried, aborted or restarted)",
                   ("ATTEMPT", "STARTED", "STARTED BY", "STEPS", "ENDED WITH"), rows)


def _conditions_section(status: Mapping[str, Any]) -> Section:
    rows = [[str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason", "")),
             format_time(parse_time(c.get("lastTransitionTime"))), str(c.get("message", ""))]
            for c in status.get("conditions") or []]
    return Section("Conditions", ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"), rows)


def images(workload: Mapping[str, Any] | None) -> str:
    """``container=image`` for each container of a workload's pod template, ``-`` when unknown."""
    spec = (((workload or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    shown = [f"{c.get('name')}={c.get('image')}" for c in spec.get("containers") or [] if isinstance(c, dict)]
    return ", ".join(shown) or "-"


@dataclass(frozen=True)
class Workloads:
    """The Canary's target (the revision under analysis) and its ``-primary`` copy (what serves traffic)."""

    target: Obj | None = None
    primary: Obj | None = None


def build_report(obj: Mapping[str, Any], events: list[Obj], workloads: Workloads | None = None) -> Report:
    """The status report of one Canary object, the Events of its namespace and the workloads it manages."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    canary = parse_canary(obj)
    release = current_release(events_for(events, namespace, name))
    tries = attempts(release)
    lines = tries[-1]
    started = lines[0].time if lines and lines[0].message.startswith(ATTEMPT_STARTS) else None
    summary = [("Canary", f"{namespace}/{name}"), ("Phase", str(status.get("phase") or "Unknown"))]
    by_iteration = False
    if canary is not None:
        by_iteration = canary.strategy is not Strategy.CANARY
        ref = canary.spec.target_ref
        summary.append(("Target", f"{ref.kind or 'Deployment'}/{ref.name}"))
        summary.append(("Strategy", canary.strategy.value))
        step = progress(canary, status)
        if step is not None:
            summary.append(("Progress", step.bar(20) + f" {step.unit}s"))
        summary.append(("Failed checks", f"{count(status, 'failedChecks')}/{canary.threshold}"))
        if canary.suspended:
            waiting = workloads is not None and waiting_revision(obj, workloads.target)
            summary.append(("Suspended", "yes, a new revision is waiting (flaggerpy resume to start it)" if waiting
                            else "yes (flaggerpy resume to continue)"))
    else:
        summary.append(("Spec", "invalid (see the Promoted condition)"))
    summary.append(("Canary weight", f"{count(status, 'canaryWeight')}%"))
    if by_iteration:
        summary.append(("Iterations", str(count(status, "iterations"))))
    summary.append(("Last transition", format_time(parse_time(status.get("lastTransitionTime")))))
    if workloads is not None:
        summary.append(("Images", f"revision {images(workloads.target)}"))
        summary.append(("", f"primary {images(workloads.primary)}"))
    summary.append(("Revision", f"applied {status.get('lastAppliedSpec') or '-'}, "
                                f"promoted {status.get('lastPromotedSpec') or '-'}"))
    if len(tries) > 1:
        summary.append(("Attempt", f"{len(tries)} of this release (earlier ones listed below)"))
    requests = handled(status)
    if requests:
        summary.append(("Manual requests handled", ", ".join(f"{a.value} {rid}" for a, rid in requests.items())))
    sections = [_conditions_section(status), _steps_section(steps_of(status, started), by_iteration),
                _events_section(lines, "Events of the current attempt" if len(tries) > 1 else "Events")]
    if len(tries) > 1:
        sections.append(_attempts_section(tries, status))
    return Report(summary, sections)


def report_plain(report: Report) -> str:
    """The report as plain text: aligned ``label: value`` lines, then each section as a text table."""
    width = max(len(label) for label, _ in report.summary) + 1
    text = "".join(f"{label + ':' if label else '':<{width}} {value}\n" for label, value in report.summary)
    for section in report.sections:
        text += f"\n{section.title}:\n"
        text += plain_table(section.headers, section.rows) if section.rows else "  <none>\n"
    return text


def report_renderable(report: Report) -> Group:
    """The report for a terminal, as one rich renderable (printed once, or redrawn by ``--watch``)."""
    summary = Table.grid(padding=(0, 2))
    for label, value in report.summary:
        summary.add_row(Text(label, style="bold"), Text(value))
    parts: list[Any] = [summary]
    for section in report.sections:
        table = Table(title=section.title, title_justify="left", title_style="bold", box=None, pad_edge=False)
        for header in section.headers:
            table.add_column(header, overflow="fold")
        for cells in section.rows:
            table.add_row(*(Text(cell) for cell in cells))
        if not section.rows:
            table.add_row(Text("<none>", style="dim"))
        parts += [Text(""), table]
    return Group(*parts)


def report_rich(report: Report, console: Console) -> None:
    """Print the report to a terminal."""
    console.print(report_renderable(report))


async def show(args: argparse.Namespace, out: TextIO) -> int:
    """Fetch the Canary and its Events and print the report to ``out`` (or follow it with ``--watch``)."""
    namespace = common.namespace_of(args)
    tty = out.isatty() and not args.output_plain
    async with common.client(args) as kube:
        # Also before --watch: this read fails fast (unreachable, forbidden, not found); informers would retry.
        obj = await common.get_canary(kube, namespace, args.name)
        if args.watch:
            return await follow(kube, namespace, args.name, out, tty)
        events, _ = await kube.list(res.EVENTS, namespace, field_selector=_event_selector(args.name))
        workloads = await fetch_workloads(kube, obj)
    report = build_report(obj, events, workloads)
    if tty:
        report_rich(report, Console(file=out))
    else:
        out.write(report_plain(report))
    return common.EXIT_OK


def _event_selector(name: str) -> str:
    return f"involvedObject.kind=Canary,involvedObject.name={name}"


def _workload_names(obj: Mapping[str, Any]) -> tuple[Any, str, str, str] | None:
    """(resource, namespace, target name, primary name) of a Canary's target; None for an unknown kind."""
    kind, namespace, name = target_key(obj)
    resource = common.TARGETS.get(kind)
    return (resource, namespace, name, f"{name}-primary") if resource is not None and name else None


async def fetch_workloads(kube: KubeClient, obj: Mapping[str, Any]) -> Workloads:
    """The Canary's target and primary as the cluster has them (either None when absent or not readable)."""
    names = _workload_names(obj)
    if names is None:
        return Workloads()
    resource, namespace, target, primary = names
    found: list[Obj | None] = []
    for name in (target, primary):
        try:
            found.append(await kube.get(resource, name, namespace))
        except (NotFound, Forbidden):
            found.append(None)
    return Workloads(*found)


async def follow(kube: KubeClient, namespace: str, name: str, out: TextIO, tty: bool) -> int:
    """Redraw the report whenever the Canary or its Events change (informers: one list, then watches).

    Without a terminal, the whole report is printed again after a blank line each time what it says changes.
    Ends when the Canary is deleted, or on Ctrl-C.
    """
    changed = asyncio.Event()

    def mark(*_: Any) -> None:
        changed.set()

    canaries = Informer(kube, res.CANARIES, namespace, field_selector=f"metadata.name={name}")
    events = Informer(kube, res.EVENTS, namespace, field_selector=_event_selector(name))
    informers = [canaries, events]
    names = _workload_names(await common.get_canary(kube, namespace, name))
    if names is not None:
        # The target and its primary, for the images: a release is an edit of the target's pod template.
        informers += [Informer(kube, names[0], namespace, field_selector=f"metadata.name={workload}")
                      for workload in names[2:]]
    for informer in informers:
        informer.add_handlers(mark, mark, mark)
    async with contextlib.AsyncExitStack() as running:
        for informer in informers:
            await running.enter_async_context(informer)
        await asyncio.gather(*(informer.wait_for_sync() for informer in informers))

        def workloads() -> Workloads | None:
            if names is None:
                return None
            return Workloads(*(informer.store.get_by_name(namespace, workload)
                               for informer, workload in zip(informers[2:], names[2:], strict=True)))

        if canaries.store.get_by_name(namespace, name) is None:
            raise common.CtlError(f'canary "{name}" not found in namespace "{namespace}"')
        console = Console(file=out, force_terminal=True) if tty else None
        shown = ""
        with contextlib.ExitStack() as stack:
            live = stack.enter_context(Live(console=console, auto_refresh=False)) if console else None
            while True:
                obj = canaries.store.get_by_name(namespace, name)
                if obj is None:
                    out.write(f"canary.flagger.app/{name} deleted\n")
                    return common.EXIT_OK
                report = build_report(obj, events.store.objects(), workloads())
                if live is not None:
                    live.update(report_renderable(report), refresh=True)
                else:
                    text = report_plain(report)
                    if text != shown:
                        out.write(("\n" if shown else "") + text)
                        out.flush()
                        shown = text
                await changed.wait()
                changed.clear()
