"""CPU time and memory of a process and of the whole machine, read from /proc (psutil when installed gives the
same numbers), and py-spy profiles of the processes a benchmark measures."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) so far, resident memory now and its peak, in MiB."""

    cpu_seconds: float
    rss_mib: float
    peak_rss_mib: float


def usage(pid: int) -> Usage | None:
    """The process's usage, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may contain spaces: split after its closing parenthesis.
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as status:
            memory = {
                key: int(value.split()[0]) / 1024
                for key, value in (line.split(":", 1) for line in status if ":" in line)
                if key in ("VmRSS", "VmHWM")
            }
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # Fields 14 and 15 of stat are utime and stime; the slice starts at field 3.
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return Usage(cpu, memory.get("VmRSS", 0.0), memory.get("VmHWM", 0.0))


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (``/proc/stat``: all but idle and iowait), so
    a run can say how much of the machine went to processes other than the ones it measures."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # Fields 9 and 10 (guest, guest_nice) are already included in user and nice.
    return (sum(fields[:8]) - idle) / _TICKS


# py-spy's output formats and the file suffix each one gets.
PROFILE_FORMATS = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "folded.txt"}


@dataclass
class Profiler:
    """py-spy samplers, one per profiled process, writing ``<dir>/<label>.<suffix>`` when stopped."""

    directory: Path
    fmt: str = "speedscope"
    rate: int = 100
    _running: list[tuple[str, asyncio.subprocess.Process]] = field(default_factory=list)

    @staticmethod
    def available() -> bool:
        """Whether py-spy is on PATH."""
        return shutil.which("py-spy") is not None

    async def start(self, label: str, pid: int) -> None:
        """Sample ``pid`` until :meth:`stop`; ``--nonblocking`` so the sampled process is never paused (it would
        otherwise be slower exactly while it is measured)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{label}.{PROFILE_FORMATS[self.fmt]}"
        process = await asyncio.create_subprocess_exec(
            "py-spy", "record", "--nonblocking", "--rate", str(self.rate), "--format", self.fmt,
            "--output", str(out), "--pid", str(pid),
            stdout=asyncio.subprocess.DEVNULL, stderr=(self.directory / f"{label}.py-spy.log").open("wb"),
        )
        self._running.append((label, process))

    async def stop(self) -> dict[str, str]:
        """Stop every sampler (SIGINT makes py-spy write its file); ``{label: file or why there is none}``."""
        written: dict[str, str] = {}
        for label, process in self._running:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
            out = self.directory / f"{label}.{PROFILE_FORMATS[self.fmt]}"
            log_path = self.directory / f"{label}.py-spy.log"
            log = log_path.read_text(errors="replace").strip()
            if out.exists():
                written[label] = str(out)
                if not log:
                    log_path.unlink()
            else:
                written[label] = f"no profile: {log.splitlines()[-1] if log else f'py-spy exit {process.returncode}'}"
        self._running.clear()
        return written
