"""Misbehaving clients and printers against the real daemon: none of them may hold a printer
forever or cost another client its job.

The contract decided here, for clients that go away (design.md, AppSocket contract):
- a client that half-closes or closes (FIN) has finished its job: what it sent is printed and
  the job is `done`, whether it was printing or still waiting its turn;
- a client that resets (RST) has failed its job: mid-job it is accounted `failed` (bytes that
  already reached the printer cannot be taken back); while waiting its turn it is `left` and
  nothing of it is printed;
- a client that sends nothing for `idle_timeout` loses its job, and the next one starts; one
  that sends nothing while waiting its turn leaves the queue after `idle_timeout` too;
- a flood that exhausts the daemon's file descriptors pauses accepting, it never spins;
- a client that does not read the back-channel holds the printer no longer than the drain grace
  after its half-close (or `idle_timeout` without one).

`test_print_path.py` covers the single-client cases (reset mid-job, idle with partial data).
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import struct
import threading
import time
import tty
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


def start(daemons: list[DaemonProcess], workdir: Path, printers: str, **global_options: str
          ) -> DaemonProcess:
    return launch(daemons, workdir, global_section(**global_options) + printers)


def serve_file(daemons, workdir: Path, **global_options: str) -> tuple[DaemonProcess, Path, int]:
    out = workdir / "printer.out"
    out.write_bytes(b"")
    port = free_port()
    daemon = start(daemons, workdir, printer_section("file", out, port), **global_options)
    wait_for(lambda: port_accepts(port))
    return daemon, out, port


def local_port(sock: socket.socket) -> int:
    return sock.getsockname()[1]


def reset(sock: socket.socket) -> None:
    """Close with RST, the way a crashing or impatient client disappears."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def hold_printer(port: int) -> socket.socket:
    """A client whose job is running and not finished (the printer is busy)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"[busy]")
    return sock


def finish(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)
    read_until_closed(sock)
    sock.close()


def test_a_client_that_never_sends_holds_the_queue_only_until_idle_timeout(daemons, tmp_path):
    daemon, out, port = serve_file(daemons, tmp_path, idle_timeout="1")
    silent = socket.create_connection(("127.0.0.1", port))
    daemon.wait_log(job_of(local_port(silent)) + "started")
    started = time.monotonic()
    send_job(port, b"the job behind it")  # queued behind the silent client, then printed
    assert time.monotonic() - started < 5
    daemon.wait_log(job_of(local_port(silent)) + "timeout: .*client sent nothing for 1 s")
    assert out.read_bytes() == b"the job behind it"
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        silent.sendall(b"too late")
        silent.recv(1)  # the server reset the connection: the client knows its job failed
    silent.close()


def test_silent_clients_waiting_in_the_queue_time_out_there_not_one_after_another(
    daemons, tmp_path
):
    """Connections that never send (a stuck client, a port scanner) must not each take their
    turn to time out: four of them would otherwise hold the printer for 4 x idle_timeout."""
    daemon, out, port = serve_file(daemons, tmp_path, idle_timeout="2")
    busy = hold_printer(port)
    daemon.wait_log(job_of(local_port(busy)) + "started")
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    for sock in silent:
        daemon.wait_log(job_of(local_port(sock)) + "queued")
    started = time.monotonic()
    waiting_job = threading.Thread(target=send_job, args=(port, b"[real job]"))
    waiting_job.start()
    finish_later = threading.Timer(0.5, finish, args=(busy,))
    finish_later.start()
    waiting_job.join(timeout=30)
    finish_later.join()
    assert time.monotonic() - started < 5  # about idle_timeout, not 4 x idle_timeout
    assert out.read_bytes() == b"[busy][real job]"
    for sock in silent:
        daemon.wait_log(job_of(local_port(sock)) + r"timeout: .*sent nothing for 2 s")
        sock.close()


@pytest.mark.parametrize("how", ["half-close", "close"])
def test_a_client_that_sends_and_goes_away_with_fin_has_its_job_printed(daemons, tmp_path, how):
    daemon, out, port = serve_file(daemons, tmp_path)
    job = os.urandom(300_000)
    sock = socket.create_connection(("127.0.0.1", port))
    client = local_port(sock)
    sock.sendall(job[:150_000])
    time.sleep(0.1)
    sock.sendall(job[150_000:])
    if how == "half-close":
        sock.shutdown(socket.SHUT_WR)
    sock.close()  # without reading anything back
    daemon.wait_log(job_of(client) + "done: 300000 bytes in")
    assert out.read_bytes() == job


def test_a_queued_client_that_sends_its_job_and_closes_is_still_printed(daemons, tmp_path):
    daemon, out, port = serve_file(daemons, tmp_path)
    busy = hold_printer(port)
    daemon.wait_log(job_of(local_port(busy)) + "started")
    fire_and_forget = socket.create_connection(("127.0.0.1", port))
    client = local_port(fire_and_forget)
    fire_and_forget.sendall(b"[sent while waiting]")
    fire_and_forget.close()
    daemon.wait_log(job_of(client) + "queued")
    time.sleep(0.3)  # the daemon sees the FIN while the client waits: it must keep the job
    finish(busy)
    daemon.wait_log(job_of(client) + "done: 20 bytes in")
    assert out.read_bytes() == b"[busy][sent while waiting]"


def test_queued_clients_that_reset_are_accounted_and_the_queue_moves_on(daemons, tmp_path):
    daemon, out, port = serve_file(daemons, tmp_path)
    busy = hold_printer(port)
    daemon.wait_log(job_of(local_port(busy)) + "started")
    silent = socket.create_connection(("127.0.0.1", port))
    sent = socket.create_connection(("127.0.0.1", port))
    for sock in (silent, sent):
        daemon.wait_log(job_of(local_port(sock)) + "queued")
    sent.sendall(b"[half a job, then a reset]")
    time.sleep(0.2)
    silent_port, sent_port = local_port(silent), local_port(sent)
    reset(silent)
    reset(sent)
    daemon.wait_log(job_of(silent_port) + "left: client went away")
    send_job_thread = threading.Thread(target=send_job, args=(port, b"[next]"))
    send_job_thread.start()
    finish(busy)
    send_job_thread.join(timeout=20)
    daemon.wait_log(r"done: 6 bytes in", count=2)  # [busy] and [next]
    # Its reset was known before its turn came: the job failed without printing half of it
    # (a Windows client that resets and resends would otherwise print it twice).
    daemon.wait_log(job_of(sent_port) + "left: client went away")
    assert out.read_bytes() == b"[busy][next]"


def cpu_seconds(pid: int) -> float:
    utime, stime = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_descriptors_neither_spins_nor_floods_the_log(daemons, tmp_path):
    """A connection flood that exhausts the daemon's file descriptors: the kernel keeps the
    connections waiting and the listener readable; the daemon must pause accepting rather than
    retry in a busy loop (100 % CPU and a warning per try), and accept again once it can."""
    daemon, out, port = serve_file(daemons, tmp_path, queue_limit="100")
    busy = hold_printer(port)
    daemon.wait_log(job_of(local_port(busy)) + "started")
    flood: list[socket.socket] = []
    soft, hard = resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE)
    try:
        resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (daemon.fd_count() + 4, hard))
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        daemon.wait_log(r"Too many open files")
        cpu, lines = cpu_seconds(daemon.pid), daemon.log().count("\n")
        time.sleep(2)
        assert cpu_seconds(daemon.pid) - cpu < 0.5
        assert daemon.log().count("\n") - lines < 10
    finally:
        for sock in flood:
            sock.close()
        resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (soft, hard))
    finish(busy)
    send_job(port, b"[after the flood]")
    daemon.wait_log(r"done: 17 bytes in", timeout=15)
    assert out.read_bytes() == b"[busy][after the flood]"


class ChattyPtyPrinter:
    """A bidirectional printer on a pty that takes job data and, while `chatty`, answers with
    status as fast as the daemon will read it (the master side never blocks)."""

    STATUS = b"@PJL USTATUS DEVICE\r\nCODE=10023\r\nDISPLAY=\"PRINTING\"\r\n\x0c"

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()
        self.chatty = threading.Event()
        self.status_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            writers = [self.master] if self.chatty.is_set() else []
            readable, writable, _ = select.select([self.master], writers, [], 0.05)
            if readable:
                with contextlib.suppress(OSError):
                    self.received += os.read(self.master, 65536)
            if writable:
                with contextlib.suppress(OSError):  # full: the daemon is not reading
                    self.status_sent += os.write(self.master, self.STATUS * 64)

    def wait_until_nobody_reads(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last = -1
        while self.status_sent != last or self.status_sent == 0:
            assert time.monotonic() < deadline, "the status flood never stalled"
            last = self.status_sent
            time.sleep(0.3)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def chatty_printer():
    printer = ChattyPtyPrinter()
    yield printer
    printer.close()


@pytest.mark.parametrize("half_closes", [True, False], ids=["half-closes", "stays-open"])
def test_a_client_that_never_reads_the_back_channel_does_not_block_the_next_job(
    daemons, tmp_path, chatty_printer, half_closes
):
    """The printer floods status; the first client never reads it. It may hold the printer for
    the drain grace after its half-close (or idle_timeout if it never half-closes), then the
    next client prints and gets its status."""
    port = free_port()
    daemon = start(daemons, tmp_path,
                   printer_section("bidi", chatty_printer.path, port, bidirectional="1"),
                   idle_timeout="2", drain_grace="0.5")
    wait_for(lambda: port_accepts(port))
    deaf = socket.create_connection(("127.0.0.1", port))
    deaf_job = job_of(local_port(deaf))
    daemon.wait_log(deaf_job + "started")
    chatty_printer.chatty.set()
    deaf.sendall(b"[deaf client's job]")
    if half_closes:
        deaf.shutdown(socket.SHUT_WR)
    chatty_printer.wait_until_nobody_reads()  # the deaf client's socket buffers are full

    started = time.monotonic()
    result: dict[str, bytes] = {}
    nxt = threading.Thread(target=lambda: result.update(reply=send_job(port, b"[next job]")))
    nxt.start()
    outcome = "done" if half_closes else r"timeout"
    daemon.wait_log(deaf_job + outcome, timeout=15)
    freed_after = time.monotonic() - started
    chatty_printer.chatty.clear()  # quiet again, so the next job's drain can end
    nxt.join(timeout=30)
    assert not nxt.is_alive()
    assert freed_after < (3 if half_closes else 5), freed_after
    wait_for(lambda: b"[next job]" in chatty_printer.received)
    assert bytes(chatty_printer.received).startswith(b"[deaf client's job]")
    assert b"@PJL USTATUS" in result["reply"]  # the client that reads gets its status
    deaf.close()


def test_printer_unplugged_mid_job_fails_it_closes_the_port_and_returns(daemons, tmp_path):
    """A pinned device that disappears (a FIFO nobody reads stands in for a stalled printer)."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    port = free_port()
    daemon = start(daemons, tmp_path, printer_section("pinned", fifo, port))
    wait_for(lambda: port_accepts(port))
    sender = socket.create_connection(("127.0.0.1", port))
    job = job_of(local_port(sender))
    errors: list[OSError] = []

    def push() -> None:
        try:
            for _ in range(64):  # 4 MiB: the pipe and the buffers fill, the job stalls
                sender.sendall(b"x" * 65536)
            sender.recv(1)
        except OSError as err:
            errors.append(err)

    pusher = threading.Thread(target=push)
    pusher.start()
    daemon.wait_log(job + "started")
    time.sleep(0.5)
    fifo.unlink()  # unplugged
    daemon.wait_log(job + r"failed: .*\(printer unplugged\)", timeout=10)
    pusher.join(timeout=10)
    sender.close()
    assert errors and isinstance(errors[0], ConnectionResetError | BrokenPipeError), errors
    wait_for(lambda: not port_accepts(port))
    assert daemon.alive

    fifo.write_bytes(b"")  # back (as a plain file this time)
    wait_for(lambda: port_accepts(port), timeout=10)
    send_job(port, b"printed after the replug")
    daemon.wait_log(r"done: 24 bytes in")
    assert fifo.read_bytes() == b"printed after the replug"
