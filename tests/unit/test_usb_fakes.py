"""A fake usblp printer for the USB layer's tests, and proof that it behaves like usblp where
the daemon depends on it (one opener at a time, the other side sees every byte, a stalled
printer pushes back, an ioctl follows the open file rather than the fd number, a wedged printer
holds an ioctl for as long as it likes)."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest

HP_1018_ID = "MFG:Hewlett-Packard;MDL:HP LaserJet 1018;CMD:ACL;CLS:PRINTER;DES:HP LaserJet 1018;"


@dataclass
class FakeLp:
    """One printer behind a node. The daemon's fd is one end of a small-buffered socketpair;
    the printer side reads it on the event loop (unless `stalled`) into `received`."""

    device_id: str = HP_1018_ID
    status: int = 0x18
    firmware_size: int | None = None  # FWVER appears once this many bytes arrived in one open
    takes_firmware: bool = True
    fwver: str = "20041006"
    stalled: bool = False
    open_errors: list[int] = field(default_factory=list)  # errnos for the next open() calls
    received: bytearray = field(default_factory=bytearray)
    opens: int = 0
    first_open: float | None = None  # event-loop time of the first open()
    status_reads: int = 0
    firmware_loaded: bool = False
    ioctl_delay: float = 0.0  # seconds each ioctl takes (usblp allows 5 s on a wedged printer)
    ioctl_threads: set[str] = field(default_factory=set)  # names of the threads that asked
    ioctl_started: threading.Event = field(default_factory=threading.Event)
    fd: int | None = None
    inode: int | None = None  # of the open file: a dup() of `fd` reaches the same printer
    _peer: socket.socket | None = None
    _since_open: int = 0

    def current_id(self) -> str:
        return self.device_id + (f"FWVER:{self.fwver};" if self.firmware_loaded else "")

    @property
    def is_open(self) -> bool:
        if self._peer is None:
            return False
        poller = select.poll()
        poller.register(self._peer, select.POLLHUP)
        if poller.poll(0):  # the daemon closed its end
            self.drain()
            self._close_peer()
            return False
        return True

    def attach(self, sock: socket.socket, fd: int) -> None:
        self.fd, self._peer, self._since_open = fd, sock, 0
        self.inode = os.fstat(fd).st_ino
        self.opens += 1
        if self.first_open is None:
            self.first_open = asyncio.get_running_loop().time()
        if not self.stalled:
            asyncio.get_running_loop().add_reader(sock.fileno(), self.drain)

    def drain(self) -> None:
        if self._peer is None or self.stalled:
            return
        while True:
            try:
                data = self._peer.recv(65536)
            except BlockingIOError:
                break
            if not data:
                self._close_peer()
                break
            self.received += data
            self._since_open += len(data)
        if (self.firmware_size is not None and self.takes_firmware
                and self._since_open >= self.firmware_size):
            self.firmware_loaded = True

    def _close_peer(self) -> None:
        if self._peer is not None:
            if not self.stalled:
                asyncio.get_running_loop().remove_reader(self._peer.fileno())
            self._peer.close()
            self._peer, self.fd, self.inode = None, None, None

    def ioctl(self) -> None:
        """What every ioctl costs: the calling thread waits out `ioctl_delay`."""
        self.ioctl_threads.add(threading.current_thread().name)
        self.ioctl_started.set()
        time.sleep(self.ioctl_delay)


class FakeOps:
    """LpOps over FakeLp printers keyed by node path."""

    def __init__(self, **printers: FakeLp) -> None:
        self.printers: dict[str, FakeLp] = {f"/dev/usb/{k}": v for k, v in printers.items()}

    def open(self, path: str) -> int:
        printer = self.printers.get(path)
        if printer is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if printer.open_errors:
            code = printer.open_errors.pop(0)
            raise OSError(code, os.strerror(code), path)
        if printer.is_open:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        ours, theirs = socket.socketpair()
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
        fd = ours.detach()
        printer.attach(theirs, fd)
        return fd

    def _printer(self, fd: int) -> FakeLp:
        """The printer whose open file `fd` is, as the kernel resolves an ioctl's fd. Safe off
        the event loop: it only looks (the loop's reader drains what the printer receives)."""
        inode = os.fstat(fd).st_ino  # EBADF for a closed fd, as the ioctl would say
        for printer in self.printers.values():
            if printer.inode == inode and printer._peer is not None:
                return printer
        raise OSError(errno.ENOTTY, "not an open fake printer")

    def device_id(self, fd: int) -> str:
        printer = self._printer(fd)
        printer.ioctl()
        return printer.current_id()

    def status(self, fd: int) -> int:
        printer = self._printer(fd)
        printer.ioctl()
        printer.status_reads += 1
        return printer.status


def test_fake_allows_one_opener_until_closed():
    async def scenario():
        ops = FakeOps(lp0=FakeLp())
        fd = ops.open("/dev/usb/lp0")
        with pytest.raises(OSError) as busy:
            ops.open("/dev/usb/lp0")
        assert busy.value.errno == errno.EBUSY
        os.close(fd)
        os.close(ops.open("/dev/usb/lp0"))

    asyncio.run(scenario())


def test_fake_receives_what_is_written_and_pushes_back_when_stalled():
    async def scenario():
        ops = FakeOps(lp0=FakeLp(), lp1=FakeLp(stalled=True))
        fd = ops.open("/dev/usb/lp0")
        os.write(fd, b"job bytes")
        await asyncio.sleep(0.01)
        assert ops.printers["/dev/usb/lp0"].received == b"job bytes"
        os.close(fd)
        stalled = ops.open("/dev/usb/lp1")
        with pytest.raises(BlockingIOError):
            for _ in range(1000):
                os.write(stalled, b"x" * 4096)
        os.close(stalled)

    asyncio.run(scenario())


def test_missing_node_is_enoent():
    with pytest.raises(FileNotFoundError):
        FakeOps().open("/dev/usb/lp9")


def test_ioctl_reaches_the_printer_through_a_dup_but_not_through_a_reused_number():
    async def scenario():
        lp = FakeLp(status=0x30)
        ops = FakeOps(lp0=lp)
        fd = ops.open("/dev/usb/lp0")
        copy = os.dup(fd)
        os.close(fd)
        assert ops.status(copy) == 0x30  # the open file lives on in the dup
        other = os.open(os.devnull, os.O_RDONLY)
        try:
            with pytest.raises(OSError):
                ops.status(other)
        finally:
            os.close(other)
            os.close(copy)

    asyncio.run(scenario())


def test_wedged_printer_holds_the_asking_thread():
    async def scenario():
        lp = FakeLp(ioctl_delay=0.2)
        ops = FakeOps(lp0=lp)
        fd = ops.open("/dev/usb/lp0")
        started = time.monotonic()
        ops.status(fd)
        os.close(fd)
        assert time.monotonic() - started >= 0.2
        assert lp.ioctl_threads == {threading.current_thread().name}

    asyncio.run(scenario())
