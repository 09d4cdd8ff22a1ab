"""The measurements. Each scenario starts one server fresh, drives it with the clients, stops it
and returns its numbers; run.py alternates the servers (A B A B ...) and collects them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.clients import Crowd, SlowPrinter, send_job, small_jobs
from bench.procstat import MIB, reset_peak_rss, total_cpu_seconds, total_memory
from bench.servers import HOST, Printer, Server, ServerError
from bench.stats import Figure, Target

GIB = 1024 * MIB
FIRST_PORT = 9100
WEB_PORT = 8631


@dataclass(frozen=True)
class Settings:
    reps: int = 5
    bulk_mib: int = 1024
    slow_mib: int = 256
    slow_rate_mib: float = 8.0
    slow_reps: int = 3
    small_jobs: int = 1000
    small_size: int = 4096
    growth_jobs: int = 10_000
    printers: int = 8
    queued: int = 50
    settle: float = 1.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(reps=2, bulk_mib=256, slow_mib=32, slow_reps=2, growth_jobs=3000, settle=0.5)


Measurements = dict[str, float | None]
ServerFactory = Callable[[str], Server]


def define_figures(s: Settings) -> dict[str, Figure]:
    """Every row of the table, in order, with the targets usbprintd is held to."""
    rows = [
        Figure("bulk_null_rate", f"Bulk job {s.bulk_mib} MiB → /dev/null: throughput", "MiB/s",
               True, Target("ratio_min", 1.0)),
        Figure("bulk_null_cpu", "Bulk job → /dev/null: server CPU", "s/GiB", False,
               Target("ratio_max", 1.0)),
        Figure("bulk_slow_rate",
               f"Bulk job {s.slow_mib} MiB → FIFO read at {s.slow_rate_mib:g} MiB/s: throughput",
               "MiB/s", True, Target("ratio_min", 1.0)),
        Figure("bulk_slow_cpu", "Bulk job → slow FIFO: server CPU", "s/GiB", False,
               Target("ratio_max", 1.0)),
        Figure("small_rate", f"Small jobs: {s.small_jobs} x {s.small_size // 1024} KiB sequential",
               "jobs/s", True, Target("ratio_min", 0.7)),
        Figure("small_cpu", "Small jobs: server CPU per job", "ms", False),
        Figure("rss_idle", "RSS idle, 1 printer, web page off", "MiB", False),
        Figure("pss_idle", "PSS idle, 1 printer, web page off", "MiB", False),
        Figure("rss_idle_web", "RSS idle, 1 printer, web page on", "MiB", False,
               Target("abs_max", 24.0)),
        Figure("rss_web_served", "RSS after serving the web page once", "MiB", False),
        Figure("rss_web_used", "RSS after serving every page and API endpoint", "MiB", False,
               Target("abs_max", 24.0)),
        Figure("rss_bulk_peak", "Peak RSS during the bulk job", "MiB", False),
        Figure("rss_fleet_idle", f"RSS idle, {s.printers} printers", "MiB", False,
               note="p910nd: sum of its processes"),
        Figure("rss_fleet_queued", f"RSS, {s.printers} printers busy + {s.queued} clients queued",
               "MiB", False, note="p910nd: sum"),
        Figure("pss_fleet_queued", f"PSS, {s.printers} printers busy + {s.queued} clients queued",
               "MiB", False, note="p910nd: sum"),
        Figure("fleet_connected", f"Queued clients connected (of {s.queued})", "clients", True,
               note="p910nd: kernel backlog only"),
        Figure("fleet_served", f"Queued clients served (of {s.queued})", "clients", True),
        Figure("rss_after_jobs", f"RSS after {s.growth_jobs} small jobs", "MiB", False),
        Figure("rss_growth", f"RSS growth: after {s.growth_jobs} jobs - idle", "MiB", False,
               Target("abs_below", 1.0)),
        Figure("rss_growth_late",
               f"RSS growth: job {s.small_jobs} → job {s.growth_jobs}", "MiB", False),
    ]
    return {figure.key: figure for figure in rows}


def _mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


class PeakWatch:
    """Peak RSS of the server during an action: the kernel's VmHWM after resetting it, or
    sampling every 10 ms where the reset is not permitted."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.reset = all(reset_peak_rss(pid) for pid in pids)
        self.sampled = 0
        self._stop = threading.Event()
        self._thread = None if self.reset else threading.Thread(target=self._sample, daemon=True)
        if self._thread:
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.sampled = max(self.sampled, total_memory(self.pids).rss)

    def peak(self) -> int:
        if self._thread:
            self._stop.set()
            self._thread.join()
            return self.sampled
        return total_memory(self.pids).peak_rss


def main_run(server: Server, s: Settings) -> Measurements:
    """Idle memory, the small-job rate, growth over many jobs, then one bulk job to /dev/null."""
    printer = Printer("/dev/null", FIRST_PORT)
    server.start([printer])
    time.sleep(s.settle)
    pids = server.pids
    idle = total_memory(pids)

    cpu_before = total_cpu_seconds(pids)
    elapsed = small_jobs(printer.port, s.small_jobs, s.small_size)
    small_cpu = total_cpu_seconds(pids) - cpu_before
    after_first = total_memory(pids)
    small_jobs(printer.port, max(s.growth_jobs - s.small_jobs, 0), s.small_size)
    time.sleep(s.settle)
    after_all = total_memory(pids)

    size = s.bulk_mib * MIB
    watch = PeakWatch(pids)
    cpu_before = total_cpu_seconds(pids)
    result = send_job(printer.port, size)
    time.sleep(0.05)  # the server's bookkeeping after its close
    bulk_cpu = total_cpu_seconds(pids) - cpu_before
    peak = watch.peak()
    server.stop()
    return {
        "rss_idle": _mib(idle.rss),
        "pss_idle": _mib(idle.pss),
        "small_rate": s.small_jobs / elapsed,
        "small_cpu": small_cpu / s.small_jobs * 1000,
        "rss_after_jobs": _mib(after_all.rss),
        "rss_growth": _mib(after_all.rss - idle.rss),
        "rss_growth_late": _mib(after_all.rss - after_first.rss),
        "bulk_null_rate": size / MIB / result.seconds,
        "bulk_null_cpu": bulk_cpu / (size / GIB),
        "rss_bulk_peak": _mib(peak),
    }


def slow_run(server: Server, s: Settings, sink: SlowPrinter) -> Measurements:
    """One bulk job into a consumer that takes a fixed rate; timed until the consumer has it."""
    printer = Printer(sink.path, FIRST_PORT + 1)
    server.start([printer])
    pids = server.pids
    size = s.slow_mib * MIB
    consumed_before = sink.consumed.value
    cpu_before = total_cpu_seconds(pids)
    started = time.perf_counter()
    send_job(printer.port, size)
    delivered = sink.wait_consumed(consumed_before + size, timeout=60)
    seconds = time.perf_counter() - started
    cpu = total_cpu_seconds(pids) - cpu_before
    server.stop()
    if not delivered:
        raise ServerError(f"{server.name}: the slow consumer did not get the whole job")
    return {"bulk_slow_rate": size / MIB / seconds, "bulk_slow_cpu": cpu / (size / GIB)}


def fleet_run(server: Server, s: Settings) -> Measurements:
    """Many printers, each busy with an idle client, and many clients queued behind them."""
    printers = [Printer("/dev/null", FIRST_PORT + i) for i in range(s.printers)]
    server.start(printers)
    time.sleep(s.settle)
    idle = total_memory(server.pids)
    crowd = Crowd([p.port for p in printers], s.queued)
    try:
        crowd.gather(settle=s.settle)
        queued = total_memory(server.pids)
        connected = crowd.connected
        served = crowd.release()
    finally:
        crowd.close()
    server.stop()
    return {
        "rss_fleet_idle": _mib(idle.rss),
        "rss_fleet_queued": _mib(queued.rss),
        "pss_fleet_queued": _mib(queued.pss),
        "fleet_connected": connected,
        "fleet_served": served,
    }


# Every page and read-only endpoint the owner's browser asks for, once each.
WEB_PATHS = ("/", "/printers/bench0", "/firmware", "/settings", "/log", "/api/printers",
             "/api/firmware", "/api/settings", "/api/events", "/static/app.js",
             "/static/style.css")


def _fetch_page(port: int, path: str = "/") -> str:
    """The status line of GET `path` (any answer proves the page is served)."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def web_run(server: Server, s: Settings) -> Measurements:
    """usbprintd's idle memory with the web page on, after it served the page once, and after
    it served every page and endpoint (the page in use, then idle again)."""
    server.start([Printer("/dev/null", FIRST_PORT)], web_port=WEB_PORT)
    time.sleep(s.settle)
    idle = total_memory(server.pids)
    statuses = [_fetch_page(WEB_PORT)]
    time.sleep(s.settle)
    served = total_memory(server.pids)
    statuses += [_fetch_page(WEB_PORT, path) for path in WEB_PATHS]
    time.sleep(s.settle)
    used = total_memory(server.pids)
    server.stop()
    wrong = [(path, status) for path, status in zip(("/", *WEB_PATHS), statuses, strict=True)
             if not status.startswith(("HTTP/1.0 200", "HTTP/1.1 200"))]
    if wrong:
        raise ServerError(f"web page did not answer properly: {wrong!r}")
    return {"rss_idle_web": _mib(idle.rss), "rss_web_served": _mib(served.rss),
            "rss_web_used": _mib(used.rss)}


def slow_sink_path(workdir: Path) -> str:
    return str(workdir / "slow-printer.fifo")
