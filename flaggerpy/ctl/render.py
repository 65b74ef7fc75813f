"""Rendering for terminals (rich) and for scripts (a plain, whitespace-aligned table like kubectl's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.align import AlignMethod
from rich.console import Group, RenderableType
from rich.padding import Padding
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
# Below this many cells a message says nothing ("Advance p…"): it moves under its row instead.
MIN_MESSAGE_WIDTH = 20
COLUMN_GAP = 2  # rich's default cell padding, one space on each side


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]],
                  minimum: Sequence[int] = ()) -> list[int]:
    """The width of each column: its widest cell, header included, and at least ``minimum[i]``."""
    table = [list(headers), *[list(r) for r in rows]]
    floors = list(minimum) + [0] * (len(headers) - len(minimum))
    return [max([floors[i], *(len(r[i]) for r in table)]) for i in range(len(headers))]


def plain_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line of a plain table: cells padded to ``widths``, three spaces apart; the last one is not padded."""
    padded = [cell.ljust(widths[i]) if i < len(cells) - 1 else cell for i, cell in enumerate(cells)]
    return "   ".join(padded).rstrip() + "\n"


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], minimum: Sequence[int] = ()) -> str:
    """Columns separated by three spaces, padded to the widest cell; the last column is not padded."""
    widths = column_widths(headers, rows, minimum)
    return "".join(plain_line(r, widths) for r in [list(headers), *rows])


def _one_line(message: str) -> str:
    # Scripts and pipes get the whole message: only a terminal has an edge to cut at.
    return " ".join(message.split())


def _failed(row: Row) -> str:
    return f"{row.failed_checks}/{row.threshold}" if row.threshold is not None else str(row.failed_checks)


CANARY_HEADERS = ("NAME", "PHASE", "WEIGHT", "SUSPENDED", "FAILED", "PROGRESS", "LASTTRANSITION", "MESSAGE")
# The widest value each column can take whatever the canaries (after NAME): rows printed one by one under the
# header by ``get --watch`` then line up with it without knowing the rows to come. NAME and NAMESPACE grow.
_CANARY_MIN_WIDTHS = (0, len("WaitingPromotion"), 3, len("false"), len("10/10"), len("[##########] 10/10"),
                      len("2026-01-01T00:00:00Z"))


def canary_headers(all_namespaces: bool) -> tuple[str, ...]:
    """The plain table's header cells."""
    return ("NAMESPACE", *CANARY_HEADERS) if all_namespaces else CANARY_HEADERS


def canary_cells(row: Row, all_namespaces: bool) -> list[str]:
    """The plain-table cells of one row."""
    cells = [row.name, row.phase, str(row.weight), "true" if row.suspended else "false", _failed(row),
             row.progress.bar() if row.progress else "-", format_time(row.last_transition), _one_line(row.message)]
    return [row.namespace, *cells] if all_namespaces else cells


def canary_widths(rows: Sequence[Row], all_namespaces: bool) -> list[int]:
    """Column widths of the plain table that also fit any later state of these rows."""
    minimum = (0, *_CANARY_MIN_WIDTHS) if all_namespaces else _CANARY_MIN_WIDTHS
    return column_widths(canary_headers(all_namespaces), [canary_cells(r, all_namespaces) for r in rows], minimum)


def canaries_plain(rows: Sequence[Row], all_namespaces: bool) -> str:
    """``get canaries`` as a stable text table."""
    return plain_table(canary_headers(all_namespaces), [canary_cells(r, all_namespaces) for r in rows])


def canaries_plain_aligned(rows: Sequence[Row], all_namespaces: bool, widths: Sequence[int]) -> str:
    """The plain table with the given column widths (``canary_widths``), so later rows line up with it."""
    lines = [canary_headers(all_namespaces), *(canary_cells(r, all_namespaces) for r in rows)]
    return "".join(plain_line(cells, widths) for cells in lines)


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


@dataclass(frozen=True)
class _Column:
    header: str
    cells: list[Text]
    justify: AlignMethod = "left"

    @property
    def width(self) -> int:
        return max([len(self.header), *(cell.cell_len for cell in self.cells)])

    def render(self, index: int, width: int) -> Text:
        cell = self.cells[index].copy()
        cell.align(self.justify, width)
        return cell


def _join(parts: Sequence[Text]) -> Text:
    return Text(" " * COLUMN_GAP).join(parts)


def _fits(columns: Sequence[_Column], width: int) -> bool:
    return sum(c.width for c in columns) + COLUMN_GAP * (len(columns) - 1) <= width


def canaries_rich(rows: Sequence[Row], all_namespaces: bool, now: datetime, width: int | None = None) -> Group:
    """``get canaries`` for a terminal ``width`` columns wide (None: unbounded): coloured phases, bars, ages.

    Nothing is ever dropped. SUSPENDED is an essential column while any canary is suspended (and absent otherwise,
    leaving its room to the message). The message, the one free-text column, is cut to the room the others leave.
    When that room is under MIN_MESSAGE_WIDTH, NAME, PHASE and WEIGHT (and NAMESPACE with -A) stay columns, the
    other columns stay while they fit, and whatever does not fit moves with the message to an indented line under
    its row, wrapped at the terminal's edge.
    """
    ages = [format_age(r.last_transition, now) for r in rows]
    # Text, not str: rich would read "[...]" in names and Event messages as markup and swallow it.
    essential = [
        _Column("NAME", [Text(r.name) for r in rows]),
        _Column("PHASE", [Text(r.phase, style=PHASE_STYLES.get(r.phase, "")) for r in rows]),
        _Column("WEIGHT", [Text(f"{r.weight}%") for r in rows], "right"),
    ]
    if all_namespaces:
        essential.insert(0, _Column("NAMESPACE", [Text(r.namespace) for r in rows]))
    if any(r.suspended for r in rows):
        # Only then: a column of "false" would take the room of the message on every terminal.
        essential.append(_Column("SUSPENDED", [Text("true" if r.suspended else "", style="magenta bold")
                                               for r in rows]))
    optional = [
        _Column("FAILED", [Text(_failed(r)) for r in rows]),
        _Column("PROGRESS", [progress_bar(r.progress) for r in rows]),
        _Column("SINCE", [Text(f"{age} ago" if r.last_transition else age) for r, age in zip(rows, ages, strict=True)]),
    ]
    messages = [Text(" ".join(r.message.split())) for r in rows]
    columns = [*essential, *optional]
    room = None if width is None else width - sum(c.width for c in columns) - COLUMN_GAP * len(columns)
    if room is None or room >= MIN_MESSAGE_WIDTH:
        return _wide(columns, messages, room)
    shown = list(essential)
    for column in optional:
        if not _fits([*shown, column], width or 0):
            break
        shown.append(column)
    return _narrow(shown, optional[len(shown) - len(essential):], messages)


def _wide(columns: list[_Column], messages: list[Text], room: int | None) -> Group:
    """One line per canary, the message last and cut with an ellipsis to ``room`` cells."""
    widths = [c.width for c in columns]
    lines: list[RenderableType] = [_header(columns, widths, "MESSAGE")]
    for i, message in enumerate(messages):
        cell = message.copy()
        if room is not None:
            cell.truncate(room, overflow="ellipsis")
        line = _join([c.render(i, w) for c, w in zip(columns, widths, strict=True)] + [cell])
        line.rstrip()
        lines.append(line)
    return _group(lines, bool(messages))


def _narrow(columns: list[_Column], moved: list[_Column], messages: list[Text]) -> Group:
    """The columns that fit on the row's line; the ``moved`` ones and the message on a wrapped line under it."""
    widths = [c.width for c in columns]
    lines: list[RenderableType] = [_header(columns, widths, "")]
    for i, message in enumerate(messages):
        line = _join([c.render(i, w) for c, w in zip(columns, widths, strict=True)])
        line.rstrip()
        lines.append(line)
        details = [Text.assemble((f"{c.header.lower()} ", "dim"), c.cells[i]) for c in moved]
        if message:
            details.append(message)
        if details:
            lines.append(Padding(_join(details), (0, 0, 0, COLUMN_GAP)))
    return _group(lines, bool(messages))


def _header(columns: list[_Column], widths: list[int], last: str) -> Text:
    cells = [Text(c.header) for c in columns]
    for cell, column, width in zip(cells, columns, widths, strict=True):
        cell.align(column.justify, width)
    header = _join(cells + ([Text(last)] if last else []))
    header.stylize("bold")
    header.rstrip()
    return header


def _group(lines: list[RenderableType], any_rows: bool) -> Group:
    if not any_rows:
        lines.append(Text("no canaries found", style="dim"))
    return Group(*lines)
