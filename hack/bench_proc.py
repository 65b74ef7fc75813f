"""CPU time and memory of another process, read from /proc (psutil when installed gives the same numbers)."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
