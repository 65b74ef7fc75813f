"""Rendering for terminals (rich) and for scripts (a plain, whitespace-aligned table like kubectl's)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from flaggerpy.ctl.view import Progress, Row, format_age, format_time

PHASE_STYLES = {
    "Succeeded": "green",
    "Initialized": "green",
    "Failed": "red",
    "Progressing": "yellow",
    "Promoting": "cyan",
    "Finalising": "cyan",
    "Waiting": "magenta",
    "WaitingPromotion": "magenta",
}
MESSAGE_WIDTH = 80
MIN_MESSAGE_WIDTH = 10
COLUMN_GAP = 2  # rich's default cell padding, one space on each side


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by three spaces, padded to the widest cell; the last column is not padded."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = []
    for r in table:
        cells = [cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _one_line(message: str, width: int = MESSAGE_WIDTH) -> str:
    text = " ".join(message.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _failed(row: Row) -> str:
    return f"{row.failed_checks}/{row.threshold}" if row.threshold is not None else str(row.failed_checks)


CANARY_HEADERS = ("NAME", "PHASE", "WEIGHT", "FAILED", "PROGRESS", "LASTTRANSITION", "MESSAGE")


def canary_cells(row: Row, all_namespaces: bool) -> list[str]:
    """The plain-table cells of one row."""
    cells = [row.name, row.phase, str(row.weight), _failed(row),
             row.progress.bar() if row.progress else "-", format_time(row.last_transition), _one_line(row.message)]
    return [row.namespace, *cells] if all_namespaces else cells


def canaries_plain(rows: Sequence[Row], all_namespaces: bool) -> str:
    """``get canaries`` as a stable text table."""
    headers = ("NAMESPACE", *CANARY_HEADERS) if all_namespaces else CANARY_HEADERS
    return plain_table(headers, [canary_cells(r, all_namespaces) for r in rows])


def progress_bar(progress: Progress | None, width: int = 6) -> Text:
    """A coloured bar with ``done/total`` after it, ``-`` when the schedule is unknown."""
    if progress is None:
        return Text("-")
    filled = round(progress.fraction * width)
    bar = Text()
    bar.append("━" * filled, style="green")
    bar.append("━" * (width - filled), style="bright_black")
    bar.append(f" {progress.done}/{progress.total}")
    return bar


def canaries_rich(rows: Sequence[Row], all_namespaces: bool, now: datetime, width: int | None = None) -> Table:
    """``get canaries`` for a terminal (``width`` columns wide): coloured phases, progress bars, ages.

    Every column but MESSAGE keeps its full width; on a narrow terminal the message is cut, never the names.
    """
    table = Table(box=None, header_style="bold", pad_edge=False)

    def fixed(header: str, values: Sequence[str], justify: JustifyMethod = "left") -> None:
        table.add_column(header, no_wrap=True, justify=justify, min_width=max([len(header), *map(len, values)]))

    if all_namespaces:
        fixed("NAMESPACE", [r.namespace for r in rows])
    fixed("NAME", [r.name for r in rows])
    fixed("PHASE", [r.phase for r in rows])
    fixed("WEIGHT", [f"{r.weight}%" for r in rows], "right")
    fixed("FAILED", [_failed(r) for r in rows])
    fixed("PROGRESS", [progress_bar(r.progress).plain for r in rows])
    fixed("SINCE", [f"{format_age(r.last_transition, now)} ago" for r in rows])
    # Left to itself rich drops whole columns when the fixed ones leave little room; give MESSAGE what is left.
    used = sum(c.min_width or 0 for c in table.columns) + COLUMN_GAP * len(table.columns)
    message_width = max(MIN_MESSAGE_WIDTH, width - used) if width else None
    table.add_column("MESSAGE", no_wrap=True, overflow="ellipsis", width=message_width)
    for row in rows:
        age = format_age(row.last_transition, now)
        # Text, not str: rich would read "[...]" in names and Event messages as markup and swallow it.
        cells = [Text(row.name), Text(row.phase, style=PHASE_STYLES.get(row.phase, "")), Text(f"{row.weight}%"),
                 Text(_failed(row)), progress_bar(row.progress), Text(f"{age} ago" if row.last_transition else age),
                 Text(row.message)]
        table.add_row(*([Text(row.namespace)] if all_namespaces else []), *cells)
    if not rows:
        table.add_row(*([""] if all_namespaces else []), Text("no canaries found", style="dim"))
    return table
