"""The printer's end of the cable: /dev/g_printerM served by one thread.

The thread reads what the computer sends, writes queued back-channel bytes, and can stop
reading to play a printer that is busy or out of paper.  The rules it follows come from the
kernel driver (f_printer.c):
- open() fails with ENODEV until the host has configured the device (P4); retry;
- write() accepts at most q_len x 8 KiB at a time (P5); loop on the remainder;
- OUT requests are only queued while someone reads or polls, so the computer's writes block
  while the printer holds (P6) once q_len x 8 KiB sit in the gadget;
- the fd must be closed, and this thread joined, before the gadget is unbound (P3: a kernel
  BUG otherwise).  `close()` does both.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16


def _ioc(direction: int, number: int, size: int, kind: str = "g") -> int:
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | number


GADGET_GET_PRINTER_STATUS = _ioc(2, 0x21, 1)  # _IOR('g', 0x21, unsigned char)
GADGET_SET_PRINTER_STATUS = _ioc(3, 0x22, 1)  # _IOWR('g', 0x22, unsigned char), by value


class DeviceChannel:
    """Owns the fd of /dev/g_printerM and the thread serving it."""

    def __init__(self, node: Path, on_data: Callable[[bytes], None]):
        self.node = node
        self._on_data = on_data
        self._fd: int | None = None
        self._wake = -1  # eventfd that interrupts the thread's poll() while open
        self._lock = threading.Lock()
        self._outgoing = bytearray()
        self._holding = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def open(self, timeout: float = 10.0, status: int | None = None) -> None:
        """Open once the host configured the device (ENODEV before that), set the initial
        port `status` if given, then start serving (call hold() before to start held)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fd = os.open(self.node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                break
            except OSError as error:
                if error.errno not in (errno.ENODEV, errno.ENOENT) \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if status is not None:
            self.status = status
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._thread = threading.Thread(target=self._serve, name=f"printer {self.node.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Stop the thread, then close the fd: after this the gadget may be unbound (P3)."""
        if self._thread is not None:
            with self._lock:
                self._stopping = True
            self._nudge()
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError(f"the {self.node.name} thread did not stop")
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._wake)
            self._fd, self._wake = None, -1
        with self._lock:
            self._stopping = False
            self._outgoing.clear()

    # -- what tests change while the computer talks to the printer -------------------------

    def send(self, data: bytes) -> None:
        """Queue back-channel bytes; the computer receives them when it reads."""
        with self._lock:
            self._outgoing += data
        self._nudge()

    @property
    def unsent(self) -> int:
        with self._lock:
            return len(self._outgoing)

    def hold(self, holding: bool = True) -> None:
        """Stop (or resume) taking data, like a busy or jammed printer."""
        with self._lock:
            self._holding = holding
        self._nudge()

    def _nudge(self) -> None:
        if self._wake >= 0:
            os.eventfd_write(self._wake, 1)

    @property
    def status(self) -> int:
        return fcntl.ioctl(self._require_fd(), GADGET_GET_PRINTER_STATUS, 0)

    @status.setter
    def status(self, value: int) -> None:
        """The byte the computer gets from GET_PORT_STATUS (usblp's LPGETSTATUS)."""
        fcntl.ioctl(self._require_fd(), GADGET_SET_PRINTER_STATUS, value)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"{self.node} is not open (printer unplugged?)")
        return self._fd

    # -- the thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # surfaced through .errors and Printer.check()
            log.exception("device side of %s failed", self.node)
            self.errors.append(error)

    def _loop(self) -> None:
        fd = self._require_fd()
        poller = select.poll()
        poller.register(self._wake, select.POLLIN)
        while True:
            with self._lock:
                if self._stopping:
                    return
                events = (0 if self._holding else select.POLLIN) \
                    | (select.POLLOUT if self._outgoing else 0)
            # Registered even with no events: polling queues the OUT requests (P6), and
            # POLLHUP/POLLERR report a host that has not configured the interface (yet).
            poller.register(fd, events)
            ready = dict(poller.poll(500))
            if self._wake in ready:
                os.eventfd_read(self._wake)
            revents = ready.get(fd, 0)
            if revents & (select.POLLERR | select.POLLHUP):
                time.sleep(0.05)
                continue
            if revents & select.POLLIN:
                self._read(fd)
            if revents & select.POLLOUT:
                self._write(fd)

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ENODEV):  # nothing yet / host reset
                return
            raise
        if data:
            self._on_data(data)

    def _write(self, fd: int) -> None:
        with self._lock:
            pending = bytes(self._outgoing[:READ_SIZE])
        try:
            written = os.write(fd, pending)  # short counts are normal (P5)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ENODEV):
                return
            raise
        with self._lock:
            del self._outgoing[:written]
