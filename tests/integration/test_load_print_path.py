"""Load and soak: the real daemon under many clients, many jobs and a slow printer.

These prove the contract holds at volume (no interleaving, arrival order, every job complete)
and that the daemon neither leaks nor buffers. Memory figures are only leak detectors here;
bench/ measures them precisely.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemon_process import (
    DaemonProcess,
    free_port,
    global_section,
    job_of,
    launch,
    port_accepts,
    printer_section,
    read_until_closed,
    send_job,
    wait_for,
)

from usbprintd.appsocket import CHUNK

MiB = 1024 * 1024


def serve(daemons: list[DaemonProcess], workdir: Path, device: Path, **global_options: str):
    port = free_port()
    daemon = launch(daemons, workdir,
                    global_section(**global_options) + printer_section("load", device, port))
    wait_for(lambda: port_accepts(port))
    return daemon, port


def started_jobs(log: str) -> list[tuple[int, int]]:
    """(job id, client port) of every 'job N from 127.0.0.1:P started' line, in log order."""
    return [(int(job), int(port))
            for job, port in re.findall(r"job (\d+) from 127\.0\.0\.1:(\d+) started", log)]


# --- 50 concurrent clients ------------------------------------------------------------------

CLIENTS = 50
LINES_PER_JOB = 8000  # about 70 KB per job: more than a socket buffer holds, so clients block


def payload(client: int) -> bytes:
    """A job whose every line names its client and position, between a header and trailer."""
    body = b"".join(b"%02d:%05d\n" % (client, line) for line in range(LINES_PER_JOB))
    return b"<<client %02d begin>>\n%s<<client %02d end>>\n" % (client, body, client)


@dataclass
class ConcurrentClient:
    number: int
    port: int = 0
    reply: bytes = b""
    error: str = ""
    thread: threading.Thread = field(init=False)

    def run(self, server_port: int, barrier: threading.Barrier) -> None:
        data = payload(self.number)
        quarter = len(data) // 4
        try:
            barrier.wait(timeout=30)
            with socket.create_connection(("127.0.0.1", server_port), timeout=60) as sock:
                self.port = sock.getsockname()[1]
                for start in range(0, len(data), quarter):
                    sock.sendall(data[start:start + quarter])
                    time.sleep(0.01)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(60)
                while chunk := sock.recv(4096):  # a reset here would mean a failed job
                    self.reply += chunk
        except OSError as err:
            self.error = repr(err)


def describe_mismatch(printed: bytes, expected: bytes) -> str:
    offset = next((n for n, (a, b) in enumerate(zip(printed, expected, strict=False)) if a != b),
                  min(len(printed), len(expected)))
    return (f"output differs at byte {offset} (printed {len(printed)}, expected {len(expected)}):"
            f" printed {printed[offset - 40:offset + 40]!r}")


def test_fifty_concurrent_clients_print_whole_and_in_acceptance_order(daemons, tmp_path):
    out = tmp_path / "printer.out"
    out.write_bytes(b"")
    daemon, port = serve(daemons, tmp_path, out, queue_limit=str(CLIENTS + 10))
    barrier = threading.Barrier(CLIENTS)
    clients = [ConcurrentClient(n) for n in range(CLIENTS)]
    for client in clients:
        client.thread = threading.Thread(target=client.run, args=(port, barrier))
        client.thread.start()
    for client in clients:
        client.thread.join(timeout=120)
    assert [c.error for c in clients if c.error] == []
    by_port = {c.port: c.number for c in clients}
    for client in clients:
        daemon.wait_log(job_of(client.port) + rf"done: {len(payload(client.number))} bytes in")

    log = daemon.log()
    started = [(job, by_port[p]) for job, p in started_jobs(log) if p in by_port]
    assert sorted(n for _, n in started) == list(range(CLIENTS)), "every client started once"
    job_ids = [job for job, _ in started]
    assert job_ids == sorted(job_ids), "jobs started in the order they were accepted"
    order = [n for _, n in started]
    expected = b"".join(payload(n) for n in order)
    printed = out.read_bytes()
    assert printed == expected, describe_mismatch(printed, expected)
    # The clients really were concurrent: most of them queued behind a running job.
    waiting = [int(n) for n in re.findall(r"queued \((\d+) waiting\)", log)]
    assert max(waiting) >= CLIENTS // 2, max(waiting)


# --- 10 000 small jobs ------------------------------------------------------------------------

WARM_UP_JOBS = 500
SOAK_JOBS = 10_000
RSS_GROWTH_LIMIT_KIB = 2048


def small_job(n: int) -> bytes:
    return b"job %05d %s\n" % (n, b"." * (n % 97))


def wait_jobs_done(daemon: DaemonProcess, count: int) -> None:
    """Wait for `count` completed jobs that carried data (port probes carry none)."""
    daemon.wait_log(r" done: [1-9]\d* bytes in", count=count, timeout=30)


def test_ten_thousand_jobs_leak_neither_descriptors_nor_memory(daemons, tmp_path):
    out = tmp_path / "printer.out"
    out.write_bytes(b"")
    daemon, port = serve(daemons, tmp_path, out, log_level="info")
    for n in range(WARM_UP_JOBS):
        send_job(port, small_job(n))
    wait_jobs_done(daemon, WARM_UP_JOBS)
    fds_before, rss_before = daemon.fd_count(), daemon.rss_kib()

    started = time.monotonic()
    for n in range(WARM_UP_JOBS, WARM_UP_JOBS + SOAK_JOBS):
        send_job(port, small_job(n))
    elapsed = time.monotonic() - started
    wait_jobs_done(daemon, WARM_UP_JOBS + SOAK_JOBS)
    fds_after, rss_after = daemon.fd_count(), daemon.rss_kib()

    assert out.read_bytes() == b"".join(small_job(n) for n in range(WARM_UP_JOBS + SOAK_JOBS))
    assert fds_after == fds_before
    assert rss_after - rss_before <= RSS_GROWTH_LIMIT_KIB, (rss_before, rss_after)
    assert len(re.findall(r"(?m) done: [1-9]\d* bytes in", daemon.log())) == (
        WARM_UP_JOBS + SOAK_JOBS)
    print(f"{SOAK_JOBS} jobs in {elapsed:.1f} s; fds {fds_before}; "
          f"VmRSS {rss_before} -> {rss_after} KiB")


def test_connection_churn_while_busy_leaves_no_descriptors_behind(daemons, tmp_path):
    """Clients that queue and hang up (impatient users, port scanners) cost nothing lasting."""
    out = tmp_path / "printer.out"
    out.write_bytes(b"")
    daemon, port = serve(daemons, tmp_path, out, queue_limit="20")
    send_job(port, b"first;")
    daemon.wait_log(r"done: 6 bytes in")  # the port probe's connection is gone by now too
    fds_idle = daemon.fd_count()
    with socket.create_connection(("127.0.0.1", port)) as busy:
        busy.sendall(b"a long job, still running")
        busy_job = job_of(busy.getsockname()[1])
        daemon.wait_log(busy_job + "started")
        # In batches, so the queue (20 places) never fills: each batch must find the places
        # the previous one freed.
        for batch in range(1, 31):
            for _ in range(10):
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
            daemon.wait_log(r"left: client hung up while waiting", count=10 * batch)
        busy.shutdown(socket.SHUT_WR)
        read_until_closed(busy)
    daemon.wait_log(busy_job + "done")
    wait_for(lambda: daemon.fd_count() == fds_idle)
    send_job(port, b"after the churn")
    assert out.read_bytes() == b"first;a long job, still running" + b"after the churn"


# --- a slow printer and a fast sender ---------------------------------------------------------

# The printer: reads the FIFO at `rate` bytes per second until SIGUSR1 says "go fast", and
# stops once it has read `total` bytes. It opens the FIFO read-write so it never sees EOF
# between jobs.
SLOW_READER = textwrap.dedent("""
    import os, signal, sys, time
    fifo, sink_path, total, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fast = []
    signal.signal(signal.SIGUSR1, lambda *_: fast.append(True))
    fd = os.open(fifo, os.O_RDWR)
    got = 0
    with open(sink_path, "wb") as sink:
        while got < total:
            data = os.read(fd, min(1 << 20 if fast else rate // 4, total - got))
            sink.write(data)
            sink.flush()
            got += len(data)
            if not fast:
                time.sleep(0.25)
""")


class Sender(threading.Thread):
    """Pushes a job as fast as the kernel takes it; `sent` says how far it got."""

    def __init__(self, port: int, data: bytes) -> None:
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.data = memoryview(data)
        self.sent = 0
        self.error = ""

    def run(self) -> None:
        try:
            while self.sent < len(self.data):
                self.sent += self.sock.send(self.data[self.sent:self.sent + 65536])
            self.sock.shutdown(socket.SHUT_WR)
            read_until_closed(self.sock, timeout=120)
        except OSError as err:
            self.error = repr(err)
        finally:
            self.sock.close()


def test_slow_printer_and_fast_sender_keep_daemon_memory_bounded(daemons, tmp_path):
    fifo, sink = tmp_path / "printer.fifo", tmp_path / "printed"
    os.mkfifo(fifo)
    warm_up = b"warm-up job\n" * 1000
    job = os.urandom(24 * MiB)
    reader = subprocess.Popen([sys.executable, "-c", SLOW_READER, str(fifo), str(sink),
                               str(len(warm_up) + len(job)), "4096"])
    try:
        daemon, port = serve(daemons, tmp_path, fifo)
        send_job(port, warm_up)  # fits the pipe: done at once, and the daemon is warmed up
        daemon.wait_log(rf"done: {len(warm_up)} bytes in")
        rss_idle = daemon.rss_kib()

        sender = Sender(port, job)
        sender_job = job_of(sender.sock.getsockname()[1])
        sender.start()
        daemon.wait_log(sender_job + "started")
        rss_peak, progress = rss_idle, []
        for _ in range(16):  # 4 s at 4 KiB/s: the printer takes about 16 KiB of 24 MiB
            time.sleep(0.25)
            rss_peak = max(rss_peak, daemon.rss_kib())
            progress.append(sender.sent)
        printed_so_far = sink.stat().st_size
        assert sender.is_alive() and sender.sent < len(job) // 2, "the sender was held back"
        # Held by TCP backpressure, not by a growing buffer: in the last second the daemon took
        # at most a couple of its fixed-size buffers' worth.
        assert progress[-1] - progress[-5] <= 2 * CHUNK, progress
        assert printed_so_far < 256 * 1024
        assert rss_peak - rss_idle <= 2048, (rss_idle, rss_peak, sender.sent)

        reader.send_signal(signal.SIGUSR1)
        sender.join(timeout=120)
        assert reader.wait(timeout=60) == 0
        assert sender.error == ""
        assert sink.read_bytes() == warm_up + job
        daemon.wait_log(sender_job + rf"done: {len(job)} bytes in")
        print(f"held back at {progress[-1]} of {len(job)} bytes; VmRSS {rss_idle} KiB idle, "
              f"{rss_peak} KiB peak")
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


@pytest.mark.parametrize("queue_limit_set", ["at start", "by a reload"])
def test_a_burst_of_clients_while_the_daemon_is_descheduled_is_queued_not_reset(
    daemons, tmp_path, queue_limit_set
):
    """On a loaded router the daemon may not run for a moment; clients arriving meanwhile wait
    in the kernel's accept queue, which must hold as many as the job queue admits (a short
    kernel queue drops their handshakes, and SYN cookies then reset them mid-job)."""
    out = tmp_path / "printer.out"
    out.write_bytes(b"")
    if queue_limit_set == "at start":
        daemon, port = serve(daemons, tmp_path, out, queue_limit=str(CLIENTS))
    else:
        daemon, port = serve(daemons, tmp_path, out, queue_limit="8")
        daemon.write_config(global_section(queue_limit=str(CLIENTS))
                            + printer_section("load", out, port))
        daemon.reload()
        daemon.wait_log(r"SIGHUP")
    send_job(port, b"first;")
    daemon.wait_log(r"done: 6 bytes in")
    burst = CLIENTS - 10
    finish(connect_while_stopped(daemon, port, burst))
    wait_jobs_done(daemon, burst + 1)
    printed = out.read_bytes()
    assert printed == b"first;" + b"".join(b"<%02d>" % n for n in range(burst))


def test_a_burst_larger_than_the_queue_is_queued_whole_then_the_port_closes(daemons, tmp_path):
    """Connections the kernel completed before the daemon looked are all taken, even past
    queue_limit, and only then is the port closed: closing it with clients in its backlog
    would reset connections that had already succeeded."""
    out = tmp_path / "printer.out"
    out.write_bytes(b"")
    daemon, port = serve(daemons, tmp_path, out, queue_limit="2", log_level="debug")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as holder:
        holder.sendall(b"first;")  # the job in progress while the burst arrives
        daemon.wait_log(r"job 1 from .* started")
        burst = 8  # within the kernel's listen backlog (16), four times the queue
        clients = connect_while_stopped(daemon, port, burst)
        daemon.wait_log(rf"port {port} closed")  # every one taken, then the port closed
        holder.shutdown(socket.SHUT_WR)
        finish(clients)
    wait_jobs_done(daemon, burst + 1)
    printed = out.read_bytes()
    assert printed == b"first;" + b"".join(b"<%02d>" % n for n in range(burst))
    wait_for(lambda: port_accepts(port))  # the queue drained: the port is open again


def connect_while_stopped(daemon: DaemonProcess, port: int, burst: int) -> list[socket.socket]:
    """`burst` clients that connect, send a small job and half-close while the daemon is
    stopped (SIGSTOP), as on a router too busy to run it for a moment; it runs again after."""
    socks: list[socket.socket] = []
    daemon.signal(signal.SIGSTOP)
    try:
        for n in range(burst):
            # The kernel completes the handshake on the daemon's behalf, at once.
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            socks.append(sock)
            sock.sendall(b"<%02d>" % n)
            sock.shutdown(socket.SHUT_WR)
    finally:
        daemon.signal(signal.SIGCONT)
    assert len(socks) == burst
    return socks


def finish(socks: list[socket.socket]) -> None:
    """Wait for the server to close each connection (a reset counts too: the printed output
    shows whether its job got through)."""
    for sock in socks:
        sock.settimeout(20)
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass
        sock.close()
