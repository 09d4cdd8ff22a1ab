"""Print clients and the slow printer: plain sockets and one reader process, all controlled here.

A job is what a CUPS socket backend or `nc -N` does: connect, send everything, half-close
(shutdown SHUT_WR), then wait until the server closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import socket
import time
from dataclasses import dataclass, field

from bench.servers import HOST

SEND_BLOCK = 4 * 1024 * 1024
JOB_TIMEOUT = 120.0


class JobError(RuntimeError):
    pass


def _pattern(size: int) -> memoryview:
    """Incompressible bytes, generated once per size."""
    return memoryview(os.urandom(size))


@dataclass
class JobResult:
    seconds: float
    bytes_sent: int


def send_job(port: int, size: int, block: memoryview | None = None) -> JobResult:
    """One job of `size` bytes; returns the time from connect until the server's close."""
    block = block if block is not None else _pattern(min(size, SEND_BLOCK) or 1)
    started = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(JOB_TIMEOUT)
        sock.connect((HOST, port))
        remaining = size
        while remaining:
            chunk = block[:remaining] if remaining < len(block) else block
            sock.sendall(chunk)
            remaining -= len(chunk)
        sock.shutdown(socket.SHUT_WR)
        _wait_server_close(sock)
    return JobResult(time.perf_counter() - started, size)


def _wait_server_close(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError as err:
        raise JobError(f"server reset the connection: {err}") from err


def small_jobs(port: int, count: int, size: int) -> float:
    """`count` sequential jobs of `size` bytes; returns the elapsed seconds."""
    payload = _pattern(size)
    started = time.perf_counter()
    for _ in range(count):
        send_job(port, size, payload)
    return time.perf_counter() - started


# --- clients that wait in a server's queue ------------------------------------------------------


@dataclass
class QueuedClient:
    port: int
    sock: socket.socket
    connected: bool = False
    sent: bool = False
    done: bool = False


@dataclass
class Crowd:
    """One idle client holding each printer busy, and more clients queued behind them.

    The holders connect and send nothing, so each server sits in its read of the first job;
    the queued clients each want to send a small job. Neither server may lose any of them."""

    ports: list[int]
    queued_count: int
    payload_size: int = 4096
    holders: list[socket.socket] = field(default_factory=list)
    queued: list[QueuedClient] = field(default_factory=list)

    def gather(self, settle: float = 0.5) -> None:
        for port in self.ports:
            self.holders.append(socket.create_connection((HOST, port), timeout=10))
        time.sleep(settle)  # let every server accept its holder and open its device
        for index in range(self.queued_count):
            port = self.ports[index % len(self.ports)]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((HOST, port))  # EINPROGRESS; the SYN may sit in the backlog
            self.queued.append(QueuedClient(port, sock))
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())

    @property
    def connected(self) -> int:
        return sum(client.connected for client in self.queued)

    def release(self, timeout: float = 60.0) -> int:
        """Let the holders finish; wait until every queued job is served. Returns how many
        were served (closed cleanly by the server after taking the job)."""
        for holder in self.holders:
            holder.shutdown(socket.SHUT_WR)
        for holder in self.holders:
            with contextlib.suppress(OSError):
                holder.settimeout(10)
                _wait_server_close(holder)
            holder.close()
        self.holders.clear()
        deadline = time.monotonic() + timeout
        while any(not c.done for c in self.queued) and time.monotonic() < deadline:
            self._pump(min(1.0, deadline - time.monotonic()))
        return sum(c.done and c.sent for c in self.queued)

    def close(self) -> None:
        for sock in self.holders:
            sock.close()
        for client in self.queued:
            client.sock.close()

    def _pump(self, timeout: float) -> None:
        pending = [c for c in self.queued if not c.done]
        writers = [c.sock for c in pending if not c.sent]
        readers = [c.sock for c in pending if c.sent]
        if not pending:
            return
        readable, writable, _ = select.select(readers, writers, [], max(timeout, 0))
        by_sock = {c.sock: c for c in pending}
        payload = b"q" * self.payload_size
        for sock in writable:
            client = by_sock[sock]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                client.done = True  # refused: counted as not served
                continue
            client.connected = True
            sock.send(payload)  # fits in an empty socket buffer
            sock.shutdown(socket.SHUT_WR)
            client.sent = True
        for sock in readable:
            client = by_sock[sock]
            try:
                data = sock.recv(65536)
            except OSError:
                client.done, client.sent = True, False
                continue
            if not data:
                client.done = True


# --- the slow printer ---------------------------------------------------------------------------


def _read_at_rate(path: str, rate: float, chunk: int, counter) -> None:
    """Consume the FIFO at no more than `rate` bytes/s, forever. O_RDWR keeps it open across
    writers, so a closed job is not an EOF and nothing spins."""
    fd = os.open(path, os.O_RDWR)
    buffer = bytearray(chunk)
    next_read = time.monotonic()
    while True:
        delay = next_read - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        received = os.readv(fd, [buffer])
        counter.value += received
        # An idle pipe must not bank credit for a later burst.
        next_read = max(next_read, time.monotonic() - chunk / rate) + received / rate


class SlowPrinter:
    """A FIFO read by a separate process at a fixed rate: a printer that takes data at a steady
    pace, the same for both servers."""

    def __init__(self, path: str, rate: float, chunk: int = 64 * 1024) -> None:
        self.path = path
        self.rate = rate
        self.chunk = chunk
        self.consumed = multiprocessing.get_context("fork").RawValue("Q", 0)
        self._process: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> SlowPrinter:
        os.mkfifo(self.path)
        context = multiprocessing.get_context("fork")
        self._process = context.Process(
            target=_read_at_rate, args=(self.path, self.rate, self.chunk, self.consumed),
            name="slow-printer", daemon=True)
        self._process.start()
        return self

    def wait_consumed(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.consumed.value < total:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
