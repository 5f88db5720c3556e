"""What the benchmark reads about processes and the machine from Linux's /proc: CPU time, memory, load.

Read between two instants, CPU times say where the work went (worker, Temporal server, Postgres, the
benchmark's own driver) and how busy the machine was with other people's processes meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE = 1024  # /proc/<pid>/status reports kB


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, reaped: bool = True) -> float:
    """User + system CPU time of one process (all its threads), and (`reaped`) of the children it has reaped."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if reaped else (11, 12))) / _TICKS_PER_S


def children_map() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_seconds(root: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU time of a process and all its live descendants (Postgres: the postmaster and its backends)."""
    children = children if children is not None else children_map()
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu_seconds(pid)
        todo.extend(children.get(pid, ()))
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of one process now (VmRSS); 0 once it has gone."""
    return _status_kb(pid, "VmRSS:") * _PAGE


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory the process ever had (VmHWM)."""
    return _status_kb(pid, "VmHWM:") * _PAGE


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def command_name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def child_named(parent: int, name: str) -> int | None:
    """The first child of `parent` whose command name is `name` (e.g. the Temporal dev server)."""
    for pid in children_map().get(parent, ()):
        if command_name(pid) == name:
            return pid
    return None


@dataclass(frozen=True)
class MachineTimes:
    """Jiffies of the whole machine since boot: all CPUs together."""

    busy_s: float
    total_s: float

    @staticmethod
    def now() -> MachineTimes:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
        return MachineTimes(busy_s=(total - idle) / _TICKS_PER_S, total_s=total / _TICKS_PER_S)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)
