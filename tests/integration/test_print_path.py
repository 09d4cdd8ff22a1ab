"""The AppSocket contract, proven with the real daemon and real clients (nc, CUPS, sockets)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
import tty
from pathlib import Path

import pytest
from daemon_process import (
    DaemonProcess,
    connected,
    free_port,
    global_section,
    job_of,
    launch,
    port_accepts,
    printer_section,
    read_until_closed,
    send_with_nc,
    wait_for,
)

CUPS_SOCKET_BACKEND = "/usr/lib/cups/backend-available/socket"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def start_daemon(workdir: Path, daemons: list[DaemonProcess]):
    return lambda config_text: launch(daemons, workdir, config_text)


def spool_files(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if p.suffix == ".prn")


def serve_spool(start_daemon, workdir: Path, **global_options: str):
    spool = workdir / "spool"
    spool.mkdir()
    port = free_port()
    config = global_section(**global_options) + printer_section("virtual", spool, port)
    daemon = start_daemon(config)
    wait_for(lambda: port_accepts(port))
    return daemon, spool, port


def serve_file(start_daemon, workdir: Path, **global_options: str):
    out = workdir / "printer.out"
    out.write_bytes(b"")
    port = free_port()
    daemon = start_daemon(global_section(**global_options) + printer_section("file", out, port))
    wait_for(lambda: port_accepts(port))
    return daemon, out, port


def test_job_sent_with_nc_arrives_byte_identical(start_daemon, workdir):
    daemon, spool, port = serve_spool(start_daemon, workdir)
    job = os.urandom(3 * 1024 * 1024 + 17)
    send_with_nc(port, job)
    wait_for(lambda: spool_files(spool))
    [printed] = spool_files(spool)
    assert printed.read_bytes() == job
    assert daemon.wait_log(r"job \d+ from 127\.0\.0\.1:\d+ done: 3145745 bytes in")


@pytest.mark.skipif(not os.path.exists(CUPS_SOCKET_BACKEND), reason="needs Debian's cups package")
def test_job_sent_with_cups_socket_backend_arrives_byte_identical(start_daemon, workdir):
    _, spool, port = serve_spool(start_daemon, workdir)
    job_file = workdir / "job.prn"
    job_file.write_bytes(os.urandom(1024 * 1024 + 3))
    started = time.monotonic()
    result = subprocess.run(
        [CUPS_SOCKET_BACKEND, "1", "user", "title", "1", "", str(job_file)],
        # The URI as a CUPS queue has it, SNMP status queries included (nothing answers them
        # here; the whole job takes well under a second either way).
        env={**os.environ, "DEVICE_URI": f"socket://127.0.0.1:{port}/"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The server closes as soon as the job is in: CUPS must not sit out its 90 s wait.
    assert time.monotonic() - started < 30
    wait_for(lambda: spool_files(spool))
    assert spool_files(spool)[0].read_bytes() == job_file.read_bytes()


def slow_client(port: int, parts: list[bytes], pause: float) -> tuple[threading.Thread, str]:
    """A client sending its job in pieces from a thread; returns the thread and the log prefix
    of its job."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def run() -> None:
        with sock:
            for part in parts:
                sock.sendall(part)
                time.sleep(pause)
            sock.shutdown(socket.SHUT_WR)
            read_until_closed(sock)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, job_of(sock.getsockname()[1])


def job_re(sock: socket.socket) -> str:
    return job_of(sock.getsockname()[1])


def test_clients_are_served_one_after_another_in_arrival_order(start_daemon, workdir):
    daemon, out, port = serve_file(start_daemon, workdir)
    first, first_job = slow_client(port, [b"A" * 1000, b"a" * 1000], pause=1.0)
    daemon.wait_log(first_job + "started")
    waiting = []
    for byte in (b"B", b"C"):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(byte * 5000)
        sock.shutdown(socket.SHUT_WR)
        waiting.append(sock)
        daemon.wait_log(job_re(sock) + "queued")
    # A client that hangs up while waiting leaves the queue and prints nothing.
    quitter = socket.create_connection(("127.0.0.1", port))
    quitter_job = job_re(quitter)
    daemon.wait_log(quitter_job + "queued")
    quitter.close()
    daemon.wait_log(quitter_job + "left: client hung up while waiting")
    first.join(timeout=20)
    last_job = job_re(waiting[-1])
    for sock in waiting:
        read_until_closed(sock)
        sock.close()
    daemon.wait_log(last_job + "done")
    assert out.read_bytes() == b"A" * 1000 + b"a" * 1000 + b"B" * 5000 + b"C" * 5000


def test_full_queue_refuses_new_clients_until_a_slot_frees(start_daemon, workdir):
    daemon, out, port = serve_file(start_daemon, workdir, queue_limit="1")
    first, first_job = slow_client(port, [b"1" * 100, b"1" * 100], pause=1.5)
    daemon.wait_log(first_job + "started")
    second = socket.create_connection(("127.0.0.1", port))
    daemon.wait_log(job_re(second) + "queued")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    second.sendall(b"2" * 100)
    second.shutdown(socket.SHUT_WR)
    first.join(timeout=20)
    # The first job ended, the second is printing or done: a slot is free again.
    wait_for(lambda: port_accepts(port))
    read_until_closed(second)
    second.close()
    assert out.read_bytes().startswith(b"1" * 200 + b"2" * 100)


def test_queue_limit_zero_refuses_while_busy(start_daemon, workdir):
    daemon, _, port = serve_file(start_daemon, workdir, queue_limit="0")
    first, first_job = slow_client(port, [b"x" * 10, b"x" * 10], pause=1.0)
    daemon.wait_log(first_job + "started")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    first.join(timeout=20)
    wait_for(lambda: port_accepts(port))


class PtyPrinter:
    """A bidirectional fake printer: the daemon writes to the pty's slave side, we play the
    printer on the master side and answer with status bytes."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes pass unchanged
        self.path = os.ttyname(self.slave)
        self.received = bytearray()

    def read_job(self, size: int, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.received) < size and time.monotonic() < deadline:
            self.received += os.read(self.master, 65536)
        return bytes(self.received)

    def answer(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_bidirectional_printer_status_reaches_client_after_half_close(start_daemon, workdir):
    printer = PtyPrinter()
    try:
        port = free_port()
        daemon = start_daemon(global_section(drain_grace="1.0")
                              + printer_section("bidi", printer.path, port, bidirectional="1"))
        wait_for(lambda: port_accepts(port))
        job = b"\x1b%-12345X@PJL INFO STATUS\r\n" + os.urandom(2000)
        with connected(port) as sock:
            sock.sendall(job)
            sock.shutdown(socket.SHUT_WR)  # like `nc -N` and CUPS with waiteof
            assert printer.read_job(len(job)) == job
            time.sleep(0.3)  # the status comes after the client's half-close (p910nd drops it)
            printer.answer(b"@PJL USTATUS DEVICE\r\nCODE=10001\r\n\x0c")
            reply = read_until_closed(sock)
            job = job_re(sock)
        assert reply == b"@PJL USTATUS DEVICE\r\nCODE=10001\r\n\x0c"
        daemon.wait_log(job + "done: 2027 bytes in, 34 bytes out")
    finally:
        printer.close()


def test_bidirectional_printer_status_reaches_client_during_the_job(start_daemon, workdir):
    printer = PtyPrinter()
    try:
        port = free_port()
        daemon = start_daemon(global_section(drain_grace="1.0")
                              + printer_section("bidi", printer.path, port, bidirectional="1"))
        wait_for(lambda: port_accepts(port))
        head = b"\x1b%-12345X@PJL USTATUS DEVICE=ON\r\n"
        tail = os.urandom(3000) + b"\x1b%-12345X"
        status = b"@PJL USTATUS DEVICE\r\nCODE=10001\r\n\x0c"
        with connected(port) as sock:
            job = job_re(sock)
            sock.sendall(head)
            assert printer.read_job(len(head)) == head
            printer.answer(status)
            # The client is still sending: the status must come now, not at the half-close
            # (a recv that times out here fails the test).
            sock.settimeout(5)
            received = b""
            while len(received) < len(status):
                chunk = sock.recv(4096)
                assert chunk, "the server closed the connection in the middle of the job"
                received += chunk
            assert received == status
            sock.sendall(tail)
            sock.shutdown(socket.SHUT_WR)
            assert printer.read_job(len(head) + len(tail)) == head + tail
            assert read_until_closed(sock) == b""
        daemon.wait_log(job + f"done: {len(head) + len(tail)} bytes in, {len(status)} bytes out")
    finally:
        printer.close()


def test_silent_client_is_dropped_after_idle_timeout(start_daemon, workdir):
    daemon, out, port = serve_file(start_daemon, workdir, idle_timeout="1")
    with connected(port) as silent:
        silent.sendall(b"partial")
        started = time.monotonic()
        read_until_closed(silent, timeout=10)
        assert 0.9 <= time.monotonic() - started < 5
        daemon.wait_log(job_re(silent) + "timeout: .*client sent nothing for 1 s")
    send_with_nc(port, b"next job")
    daemon.wait_log(r"done: 8 bytes in")
    assert out.read_bytes() == b"partial" + b"next job"


def test_client_reset_mid_job_ends_it_and_next_job_starts(start_daemon, workdir):
    daemon, out, port = serve_file(start_daemon, workdir)
    sock = socket.create_connection(("127.0.0.1", port))
    job = job_re(sock)
    daemon.wait_log(job + "started")
    sock.sendall(b"half a job")
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    daemon.wait_log(job + "failed: .*client connection lost")
    send_with_nc(port, b"the next job")
    daemon.wait_log(r"done: 12 bytes in")
    assert out.read_bytes() == b"half a job" + b"the next job"


def how_the_server_ended(sock: socket.socket, chunks: int = 200) -> str:
    """Sends a large job until the server ends the connection, and says how: 'reset' (a send
    or recv met the RST), 'broken pipe' (a send after it) or 'eof'. A server that just stops
    reading makes a send or recv time out: that TimeoutError is raised, never taken as an
    ending."""
    try:
        for _ in range(chunks):
            sock.sendall(b"x" * 65536)
        sock.shutdown(socket.SHUT_WR)
        rest = sock.recv(65536)
    except ConnectionResetError:
        return "reset"
    except BrokenPipeError:
        return "broken pipe"
    assert rest == b"", rest
    return "eof"


def test_device_write_error_fails_the_job_and_server_keeps_serving(start_daemon, workdir):
    port = free_port()
    daemon = start_daemon(global_section() + printer_section("full", "/dev/full", port))
    wait_for(lambda: port_accepts(port))
    for _ in range(2):
        with connected(port) as sock:
            job = job_re(sock)
            sock.settimeout(10)
            # 13 MB cannot all sit in socket buffers: the server must end the connection.
            assert how_the_server_ended(sock) in ("reset", "broken pipe", "eof")
        daemon.wait_log(job + "failed: .*write failed: No space left on device")
    assert daemon.alive and port_accepts(port)


def test_sighup_reload_leaves_a_job_on_another_printer_untouched(start_daemon, workdir):
    out = workdir / "a.out"
    out.write_bytes(b"")
    spool = workdir / "spool"
    spool.mkdir()
    port_a, port_b, port_b2 = free_port(), free_port(), free_port()
    base = global_section() + printer_section("a", out, port_a)
    daemon = start_daemon(base + printer_section("b", spool, port_b))
    wait_for(lambda: port_accepts(port_a) and port_accepts(port_b))
    job, job_a = slow_client(port_a, [b"first half;", b"second half"], pause=2.0)
    daemon.wait_log("a: " + job_a + "started")
    daemon.write_config(base + printer_section("b", spool, port_b2))
    daemon.reload()
    wait_for(lambda: port_accepts(port_b2))
    assert not port_accepts(port_b)
    job.join(timeout=20)
    daemon.wait_log("a: " + job_a + "done: 22 bytes in")
    assert out.read_bytes() == b"first half;second half"
    send_with_nc(port_b2, b"on the new port")
    wait_for(lambda: spool_files(spool))


def test_broken_config_on_reload_keeps_last_good_config_serving(start_daemon, workdir):
    daemon, _, port = serve_spool(start_daemon, workdir)
    good = daemon.config_path.read_text()
    daemon.write_config("config printer 'broken\n\toption port\n")
    daemon.reload()
    daemon.wait_log(r"configuration not loaded, keeping the last good one")
    assert port_accepts(port)
    assert daemon.config_path.read_text().startswith("config printer 'broken")  # not overwritten
    daemon.write_config(good)


def test_bad_printer_value_disables_only_that_printer(start_daemon, workdir):
    spool = workdir / "spool"
    spool.mkdir()
    good_port = free_port()
    daemon = start_daemon(global_section() + printer_section("good", spool, good_port)
                          + printer_section("bad", spool, 70000))
    daemon.wait_log(r"bad\.port: port 70000 is out of range")
    wait_for(lambda: port_accepts(good_port))


def test_sigterm_during_a_job_stops_cleanly_and_accounts_it_as_aborted(start_daemon, workdir):
    daemon, _, port = serve_file(start_daemon, workdir)
    with connected(port) as sock:
        sock.sendall(b"started but never finished")
        job = job_re(sock)
        daemon.wait_log(job + "started")
        time.sleep(0.2)
        daemon.signal(signal.SIGTERM)
        assert daemon.process.wait(10) == 0
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    daemon.wait_log(job + "aborted: .*daemon stopping")
    assert "stopped" in daemon.log().splitlines()[-1]


def test_port_in_use_is_retried_until_it_frees(start_daemon, workdir):
    spool = workdir / "spool"
    spool.mkdir()
    port = free_port()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    daemon = start_daemon(global_section() + printer_section("virtual", spool, port))
    daemon.wait_log(r"cannot listen on 127\.0\.0\.1:\d+: Address already in use; retrying")
    blocker.close()
    wait_for(lambda: port_accepts(port), timeout=15)
    assert daemon.alive


def test_empty_bind_serves_ipv4_and_ipv6(start_daemon, workdir):
    if not socket.has_ipv6 or not Path("/proc/net/if_inet6").exists():
        pytest.skip("this kernel has no IPv6")
    spool = workdir / "spool"
    spool.mkdir()
    port = free_port()
    start_daemon(global_section() + printer_section("virtual", spool, port, bind=""))
    wait_for(lambda: port_accepts(port))
    assert port_accepts(port, "::1")
    send_with_nc(port, b"over ipv6", host="::1")
    send_with_nc(port, b"over ipv4", host="127.0.0.1")
    wait_for(lambda: len(spool_files(spool)) == 2)
    assert sorted(p.read_bytes() for p in spool_files(spool)) == [b"over ipv4", b"over ipv6"]


def test_p910nd_style_port_digit_means_9100_plus_n(start_daemon, workdir):
    spool = workdir / "spool"
    spool.mkdir()
    daemon = start_daemon(global_section() + printer_section("legacy", spool, 7))
    # Whether or not 9107 is free on this machine, the daemon must be trying that port.
    daemon.wait_log(r"legacy.*127\.0\.0\.1:9107")
