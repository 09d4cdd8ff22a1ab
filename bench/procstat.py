"""What a server process costs, read from /proc (Linux only, no third-party tools)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024
MIB = 1024 * 1024


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren, ... of `pid` (all its threads' children)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    pending.append(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of every thread of `pid`, plus its reaped children (cutime+cstime) and its
    live descendants."""
    total = 0.0
    fields = _stat_fields(pid)
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            total += sum(int(_stat_fields(child)[i]) for i in (11, 12)) / CLOCK_TICKS
    return total


def user_system_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid`'s threads: where a server's time goes, in its own
    code or in the kernel's socket and device work."""
    fields = _stat_fields(pid)
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


@dataclass(frozen=True)
class Memory:
    """Resident (RSS), proportional (PSS: shared pages divided among their users) and peak
    resident (VmHWM) memory, in bytes."""

    rss: int
    pss: int | None
    peak_rss: int

    def __add__(self, other: Memory) -> Memory:
        pss = None if self.pss is None or other.pss is None else self.pss + other.pss
        return Memory(self.rss + other.rss, pss, self.peak_rss + other.peak_rss)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} missing in /proc/{pid}/status")


def _pss_kib(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def memory(pid: int) -> Memory:
    pss = _pss_kib(pid)
    return Memory(
        rss=_status_kib(pid, "VmRSS") * KIB,
        pss=None if pss is None else pss * KIB,
        peak_rss=_status_kib(pid, "VmHWM") * KIB,
    )


def total_memory(pids: Iterable[int]) -> Memory:
    result = Memory(0, 0, 0)
    for pid in pids:
        result = result + memory(pid)
    return result


def reset_peak_rss(pid: int) -> bool:
    """Restart VmHWM from the current RSS (writing 5 to clear_refs; needs privilege)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state in this network namespace (IPv4 and IPv6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A":  # TCP_LISTEN
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports
