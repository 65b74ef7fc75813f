"""What the demo shows: one state, drawn live with rich on a terminal or printed as plain lines elsewhere.

Both reporters receive the same calls; the plain one prints one line per change (CI logs stay readable), the live
one redraws a dashboard a few times a second: phase, the traffic split as a bar, failed checks, the measured traffic,
and one block per release (its image and outcome, every metric's value at every analysis step, its Events).
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flaggerpy.analysis.base import MetricResult

BAR_WIDTH = 50
MAX_EVENTS = 10
MAX_STEPS = 12
# How many Events an earlier release's block keeps on screen (its outcome line says how it ended).
MAX_EARLIER_EVENTS = 3
# Distinct glyphs, so the split reads without colour (and for colour-blind users); colour only adds to them.
PRIMARY_GLYPH = "█"
CANARY_GLYPH = "░"
_PHASE_STYLES = {
    "Succeeded": "bold green",
    "Failed": "bold red",
    "Progressing": "bold yellow",
    "Promoting": "bold cyan",
    "Finalising": "bold cyan",
    "Initialized": "bold blue",
}


@dataclass(frozen=True)
class StepMetrics:
    """The metric results of one analysis step."""

    elapsed: float
    canary_weight: int
    results: tuple[MetricResult, ...]

    @property
    def passed(self) -> bool:
        """Whether no result fails the step."""
        return not any(result.fails_step for result in self.results)


@dataclass(frozen=True)
class Traffic:
    """Requests per second and error share measured at one backend over ``window`` seconds, the time since the
    route's current weights took effect (so the numbers always belong to the split the bar shows)."""

    rps: float
    error_percent: float
    window: float = 1.0


@dataclass
class ReleaseBlock:
    """One revision of the app as the demo saw it: its image, its analysis steps and Events, and how it ended."""

    number: int
    image: str
    outcome: str = ""
    steps: deque[StepMetrics] = field(default_factory=lambda: deque(maxlen=MAX_STEPS))
    events: deque[tuple[float, str, str, str]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))

    @property
    def title(self) -> str:
        """``release 2: ghcr.io/...:6.0.3`` (``initial version: ...`` for the first)."""
        return f"release {self.number}: {self.image}" if self.number else f"initial version: {self.image}"


@dataclass
class DemoState:
    """Everything the display knows."""

    title: str
    threshold: int
    metrics_backend: str = ""
    telemetry_url: str = ""
    """Base URL of the controller's /metrics, /healthz and /readyz; empty until the controller runs."""
    dashboard_url: str = ""
    """The web dashboard's page of the demo's canary; empty until it is served."""
    stage: str = "starting"
    phase: str = ""
    primary_weight: int | None = None
    canary_weight: int | None = None
    failed_checks: int = 0
    releases: list[ReleaseBlock] = field(default_factory=lambda: [ReleaseBlock(0, "")])
    traffic: dict[str, Traffic] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def current(self) -> ReleaseBlock:
        """The block of the revision the Canary works on now."""
        return self.releases[-1]

    @property
    def steps(self) -> deque[StepMetrics]:
        """The current release's analysis steps."""
        return self.current.steps

    @property
    def events(self) -> deque[tuple[float, str, str, str]]:
        """The current release's Events."""
        return self.current.events

    def new_release(self, image: str) -> ReleaseBlock:
        """Start the block of a new revision (the first call names the initial version)."""
        if not self.current.image and not self.current.steps:
            self.current.image = image
            return self.current
        self.releases.append(ReleaseBlock(len(self.releases), image))
        return self.current

    @property
    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.started


class Reporter(Protocol):
    """Receives every change the demo observes."""

    state: DemoState

    def start(self) -> None:
        """Begin showing."""

    def stop(self) -> None:
        """Stop showing (the final summary follows as a plain line)."""

    def stage(self, text: str) -> None:
        """The demo moved on to ``text``."""

    def phase(self, phase: str, failed_checks: int) -> None:
        """The Canary's status changed."""

    def weights(self, primary: int, canary: int) -> None:
        """The HTTPRoute's weights changed."""

    def metrics(self, canary_weight: int, results: list[MetricResult]) -> None:
        """One analysis step's metric results."""

    def event(self, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event about the Canary."""

    def traffic(self, measured: dict[str, Traffic]) -> None:
        """Measured traffic per backend since the route's weights last changed."""

    def release(self, image: str) -> None:
        """The app's Deployment now runs ``image``: a new revision (the first call: the initial version)."""

    def outcome(self, text: str) -> None:
        """How the current release ended (promoted, rolled back, superseded, ...)."""

    def telemetry(self, url: str) -> None:
        """The controller serves its /metrics, /healthz and /readyz at ``url``."""

    def dashboard(self, url: str) -> None:
        """The web dashboard shows the demo's canary at ``url``."""

    def line(self, text: str) -> None:
        """A message outside the dashboard (summary, kubeconfig path)."""


def format_value(result: MetricResult) -> str:
    """A metric's value for display; what went wrong when there is none."""
    if result.value is None:
        return "no data" if result.error and "no values" in result.error else "error"
    if math.isnan(result.value):
        return "NaN"
    text = f"{result.value:.2f}"
    # Rounding noise (100 - 100 * x / x) must not read as a negative error rate.
    return "0.00" if text == "-0.00" else text


def format_bounds(result: MetricResult) -> str:
    """``min 99`` / ``max 500`` / ``99..100``."""
    if result.min is not None and result.max is not None:
        return f"{result.min:g}..{result.max:g}"
    if result.min is not None:
        return f"min {result.min:g}"
    if result.max is not None:
        return f"max {result.max:g}"
    return ""


def _verdict(result: MetricResult) -> str:
    if result.skipped:
        return "skipped"
    return "ok" if result.passed else "FAIL"


class PlainReporter:
    """One line per change, prefixed by the seconds since start."""

    def __init__(self, state: DemoState, out: TextIO | None = None) -> None:
        self.state = state
        self._out = out or sys.stdout

    def _print(self, text: str) -> None:
        self._out.write(f"[{self.state.elapsed:6.1f}s] {text}\n")
        self._out.flush()

    def start(self) -> None:
        """Print the title."""
        self._print(self.state.title)

    def stop(self) -> None:
        """Nothing to tear down."""

    def stage(self, text: str) -> None:
        """Print the new stage."""
        self.state.stage = text
        self._print(f"== {text}")

    def phase(self, phase: str, failed_checks: int) -> None:
        """Print phase and failed-check changes."""
        if phase != self.state.phase:
            self.state.phase = phase
            self._print(f"phase {phase}")
        if failed_checks != self.state.failed_checks:
            self.state.failed_checks = failed_checks
            self._print(f"failed checks {failed_checks}/{self.state.threshold}")

    def weights(self, primary: int, canary: int) -> None:
        """Print the new split."""
        if (primary, canary) == (self.state.primary_weight, self.state.canary_weight):
            return
        self.state.primary_weight, self.state.canary_weight = primary, canary
        self._print(f"weights primary {primary}% canary {canary}%")

    def metrics(self, canary_weight: int, results: list[MetricResult]) -> None:
        """Print one step's checks on one line."""
        step = StepMetrics(self.state.elapsed, canary_weight, tuple(results))
        self.state.steps.append(step)
        parts = [f"{r.name}={format_value(r)} ({format_bounds(r)}) {_verdict(r)}" for r in results]
        self._print(f"checks at canary {canary_weight}%: " + ", ".join(parts))

    def event(self, type_: str, reason: str, message: str) -> None:
        """Print the Event."""
        self.state.events.append((self.state.elapsed, type_, reason, message))
        self._print(f"event {type_} {reason}: {message}")

    def traffic(self, measured: dict[str, Traffic]) -> None:
        """Kept for the summary; printing it every second would drown the log."""
        self.state.traffic = measured

    def release(self, image: str) -> None:
        """Print where a new release's lines begin."""
        block = self.state.new_release(image)
        self._print(f"== {block.title}")

    def outcome(self, text: str) -> None:
        """Print how the release ended."""
        block = self.state.current
        block.outcome = text
        self._print(f"== {block.title}: {text}")

    def telemetry(self, url: str) -> None:
        """Print where to scrape the controller."""
        self.state.telemetry_url = url
        self._print(f"controller metrics at {url}/metrics (health: /healthz, /readyz)")

    def dashboard(self, url: str) -> None:
        """Print where the release's web page is."""
        self.state.dashboard_url = url
        self._print(f"dashboard of this release: {url}")

    def line(self, text: str) -> None:
        """Print ``text`` as is."""
        self._out.write(text + "\n")
        self._out.flush()


class LiveReporter:
    """A rich dashboard redrawn a few times a second."""

    def __init__(self, state: DemoState, console: Console | None = None) -> None:
        self.state = state
        self.console = console or Console()
        self._live = Live(console=self.console, refresh_per_second=8, get_renderable=self.render,
                          redirect_stderr=True, redirect_stdout=True)

    def start(self) -> None:
        """Start redrawing."""
        self._live.start()

    def stop(self) -> None:
        """Draw once more and leave the last frame on screen."""
        self._live.refresh()
        self._live.stop()

    def stage(self, text: str) -> None:
        """Show the new stage."""
        self.state.stage = text

    def phase(self, phase: str, failed_checks: int) -> None:
        """Show the Canary's status."""
        self.state.phase, self.state.failed_checks = phase, failed_checks

    def weights(self, primary: int, canary: int) -> None:
        """Show the route's split."""
        self.state.primary_weight, self.state.canary_weight = primary, canary

    def metrics(self, canary_weight: int, results: list[MetricResult]) -> None:
        """Add one step to the checks table."""
        self.state.steps.append(StepMetrics(self.state.elapsed, canary_weight, tuple(results)))

    def event(self, type_: str, reason: str, message: str) -> None:
        """Add an Event to the list."""
        self.state.events.append((self.state.elapsed, type_, reason, message))

    def traffic(self, measured: dict[str, Traffic]) -> None:
        """Show the measured traffic."""
        self.state.traffic = measured

    def release(self, image: str) -> None:
        """Open a block for the new revision."""
        self.state.new_release(image)

    def outcome(self, text: str) -> None:
        """Close the current block with how it ended."""
        self.state.current.outcome = text

    def telemetry(self, url: str) -> None:
        """Show where to scrape the controller."""
        self.state.telemetry_url = url

    def dashboard(self, url: str) -> None:
        """Show the release's web page in the header, beside the scrape address."""
        self.state.dashboard_url = url

    def line(self, text: str) -> None:
        """Print above the dashboard (or after it, once stopped)."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    # drawing

    def render(self) -> RenderableType:
        """The whole dashboard for the current state."""
        state = self.state
        header = Text.assemble(
            (state.title, "bold"), "\n",
            ("stage   ", "dim"), state.stage, "\n",
            ("phase   ", "dim"), (state.phase or "-", _PHASE_STYLES.get(state.phase, "bold")),
            ("    failed checks ", "dim"),
            (f"{state.failed_checks}/{state.threshold}", "red" if state.failed_checks else "green"),
            ("    elapsed ", "dim"), f"{state.elapsed:.1f}s",
            ("    metrics ", "dim"), state.metrics_backend,
            *((("\nscrape  ", "dim"), f"{state.telemetry_url}/metrics") if state.telemetry_url else ()),
            *((("\nweb     ", "dim"), state.dashboard_url) if state.dashboard_url else ()),
        )
        parts: list[RenderableType] = [header, self._bar(), self._traffic()]
        for block in state.releases:
            parts += self._block(block, block is state.current)
        return Panel(Group(*parts), title="flaggerpy demo", border_style="blue")

    def _block(self, block: ReleaseBlock, current: bool) -> list[RenderableType]:
        """A release's title line with its outcome, then its checks (a count for an earlier release, which keeps
        only its last few Events, so the panel stays on one screen), then its Events."""
        style = "bold red" if "rolled back" in block.outcome or "aborted" in block.outcome else "bold green"
        title = Text.assemble(("\n── ", "dim"), (block.title or "waiting for the app", "bold"),
                              *(((" → ", "dim"), (block.outcome, style)) if block.outcome else
                                (((" → in progress", "dim"),) if current else ())))
        parts: list[RenderableType] = [title]
        if current and (block.number or block.steps):
            parts.append(self._steps(block))
        elif block.steps:
            failed = sum(1 for step in block.steps if not step.passed)
            parts.append(Text(f"{len(block.steps)} analysis step(s), {failed} failed", style="dim"))
        events = list(block.events)
        parts.append(self._events(events if current else events[-MAX_EARLIER_EVENTS:]))
        return parts

    def _bar(self) -> RenderableType:
        state = self.state
        if state.primary_weight is None or state.canary_weight is None:
            return Text("traffic split: no route yet", style="dim")
        total = max(state.primary_weight + state.canary_weight, 1)
        canary_cells = round(BAR_WIDTH * state.canary_weight / total)
        return Text.assemble(
            ("\nprimary ", "dim"), (PRIMARY_GLYPH, "blue"), (f" {state.primary_weight:3d}% ", "bold blue"),
            (PRIMARY_GLYPH * (BAR_WIDTH - canary_cells), "blue"), (CANARY_GLYPH * canary_cells, "yellow"),
            (f" {state.canary_weight:3d}%", "bold yellow"), (" canary ", "dim"), (CANARY_GLYPH, "yellow"),
        )

    def _traffic(self) -> RenderableType:
        if not self.state.traffic:
            return Text("")
        window = max(t.window for t in self.state.traffic.values())
        items = [
            (f"{backend}: {t.rps:5.1f} req/s, {t.error_percent:4.1f}% errors  ", "red" if t.error_percent else "")
            for backend, t in self.state.traffic.items()
        ]
        return Text.assemble((f"measured over the {window:.1f}s at these weights: ", "dim"), *items)

    def _steps(self, block: ReleaseBlock) -> RenderableType:
        steps = list(block.steps)
        table = Table(title="analysis steps", title_justify="left", expand=False, show_edge=False, pad_edge=False)
        table.add_column("time", justify="right", style="dim")
        table.add_column("canary", justify="right")
        names = [r.name for r in steps[-1].results] if steps else []
        bounds = {r.name: format_bounds(r) for r in steps[-1].results} if steps else {}
        for name in names:
            table.add_column(f"{name}\n({bounds[name]})", justify="right")
        table.add_column("verdict")
        for step in steps:
            by_name = {r.name: r for r in step.results}
            cells = [
                Text(format_value(by_name[n]), style="" if by_name[n].passed else "bold red") if n in by_name
                else Text("-") for n in names
            ]
            verdict = Text("pass", style="green") if step.passed else Text("fail", style="bold red")
            table.add_row(f"{step.elapsed:.1f}s", f"{step.canary_weight}%", *cells, verdict)
        return table

    @staticmethod
    def _events(events: list[tuple[float, str, str, str]]) -> RenderableType:
        table = Table(title="events", title_justify="left", show_header=False, show_edge=False, pad_edge=False)
        table.add_column("time", justify="right", style="dim")
        table.add_column("type")
        table.add_column("reason", style="bold")
        table.add_column("message")
        for elapsed, type_, reason, message in events:
            table.add_row(f"{elapsed:.1f}s", Text(type_, style="red" if type_ == "Warning" else "green"), reason,
                          message)
        return table
