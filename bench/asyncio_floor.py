"""How close usbprintd's small-job rate is to the least an asyncio server can do per job.

    .venv/bin/python bench/asyncio_floor.py [--runs 5] [--jobs 10000]

The floor is a bare asyncio server on the same interpreter: accept, one task per connection,
open /dev/null, read the job, write it, close — no queue, no accounting, no log line. It and
usbprintd run alternately on the same loopback (a private network namespace, as in
bench/run.py), each driven by the same sequential 4 KiB jobs; the medians say what part of the
distance to p910nd is the event loop's own round trip and what part is usbprintd's work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clients import small_jobs
from bench.isolation import enter_namespace
from bench.procstat import user_system_seconds
from bench.servers import HOST, Printer, Usbprintd

FLOOR_PORT = 9110
USBPRINTD_PORT = 9111
WARM_UP_JOBS = 300
JOB_SIZE = 4096


async def _floor_job(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    device = os.open("/dev/null", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    buffer = bytearray(16 * 1024)
    view = memoryview(buffer)
    try:
        while received := await loop.sock_recv_into(sock, buffer):
            os.write(device, view[:received])
    finally:
        os.close(device)
        sock.close()


def serve_floor(port: int) -> None:
    """The floor server itself (runs in a child process until terminated)."""
    loop = asyncio.new_event_loop()
    listener = socket.create_server((HOST, port), backlog=16)
    listener.setblocking(False)

    running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def accept() -> None:
        sock, _ = listener.accept()
        sock.setblocking(False)
        task = loop.create_task(_floor_job(sock))
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_reader(listener.fileno(), accept)
    loop.run_forever()


def measure(port: int, pid: int, jobs: int) -> tuple[float, float]:
    """(jobs per second, server CPU microseconds per job) after a warm-up."""
    small_jobs(port, WARM_UP_JOBS, JOB_SIZE)
    user, system = user_system_seconds(pid)
    elapsed = small_jobs(port, jobs, JOB_SIZE)
    user_after, system_after = user_system_seconds(pid)
    return jobs / elapsed, (user_after - user + system_after - system) / jobs * 1e6


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


def run_floor(jobs: int) -> tuple[float, float]:
    process = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(FLOOR_PORT)])
    try:
        wait_listening(FLOOR_PORT)
        return measure(FLOOR_PORT, process.pid, jobs)
    finally:
        process.terminate()
        process.wait(10)


def run_usbprintd(jobs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as workdir, Usbprintd(Path(workdir)) as server:
        server.start([Printer("/dev/null", USBPRINTD_PORT)])
        return measure(USBPRINTD_PORT, server.pids[0], jobs)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    status = enter_namespace(Path(__file__), argv)
    if status is not None:
        return status
    results: dict[str, list[tuple[float, float]]] = {"asyncio floor": [], "usbprintd": []}
    for run in range(args.runs):
        for name, runner in (("asyncio floor", run_floor), ("usbprintd", run_usbprintd)):
            rate, cpu = runner(args.jobs)
            results[name].append((rate, cpu))
            print(f"run {run + 1}/{args.runs} {name}: {rate:.0f} jobs/s, {cpu:.0f} µs CPU/job",
                  file=sys.stderr)
    print(f"| server | jobs/s, median (min-max) of {args.runs} | CPU per job, median |")
    print("|---|---:|---:|")
    for name, samples in results.items():
        rates = [rate for rate, _ in samples]
        cpu = statistics.median(cpu for _, cpu in samples)
        print(f"| {name} | {statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f}) "
              f"| {cpu:.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
