"""Printer devices behind one small interface.

A `Device` describes where a printer's bytes go; `open()` gives a `Channel` for one job.
Character devices (usblp, ptys, /dev/null) and FIFOs are driven non-blocking from the event
loop; regular files and the virtual spool directory are written directly (they never block for
long). A write error raises `DeviceError`, which fails the job, never the daemon.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BACKCHANNEL_CHUNK = 4096
# usblp allows one opener; another program (or a firmware upload) may hold it for a moment.
OPEN_RETRY_ERRNOS = {errno.EBUSY, errno.EAGAIN}
OPEN_RETRY_SECONDS = 5.0


class DeviceError(Exception):
    """The printer device failed; the message says how (shown in the job record)."""


def _describe(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)


class Channel:
    """One job's open connection to the printer."""

    fd: int | None = None
    can_read = False
    written = 0  # bytes the device has taken, also those of a write that failed half-way

    async def write(self, data: memoryview) -> None:
        raise NotImplementedError

    async def read(self) -> bytes:
        """Back-channel bytes from the printer; b'' means the printer will send no more."""
        return b""

    async def flush(self) -> None:
        """Return once the device has taken every byte written so far."""

    def close(self, completed: bool) -> None:
        raise NotImplementedError


class PollingChannel(Channel):
    """A non-blocking fd whose readiness the event loop watches (char devices, FIFOs).

    A write that the device cannot take at once stays registered with the loop until the whole
    buffer is in, the way asyncio's pipe transports do: one registration per buffer, not one
    per stall (a usblp write takes at most one 8 KiB URB at a time)."""

    def __init__(self, fd: int, can_read: bool, pollable: bool = True) -> None:
        self.fd = fd
        self.can_read = can_read
        self.pollable = pollable  # False for /dev/null, /dev/full: epoll refuses them
        self.last_progress = time.monotonic()
        self._pending: memoryview | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._watching: asyncio.AbstractEventLoop | None = None  # writer registered there

    @property
    def stalled_since(self) -> float | None:
        """When the device last took data, while it is refusing more; None while it keeps up."""
        return self.last_progress if self._pending else None

    def _write_some(self, data: memoryview) -> memoryview:
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            return data
        except OSError as err:
            raise DeviceError(f"write failed: {_describe(err)}") from err
        self.last_progress = time.monotonic()
        self.written += written
        return data[written:]

    async def write(self, data: memoryview) -> None:
        self.last_progress = time.monotonic()
        data = self._write_some(data)
        while data and not self.pollable:
            data = self._write_some(data)
        if data:
            await self._until_written(data)

    async def flush(self) -> None:
        # usblp reports writable only when its last URB completed.
        if self.pollable:
            await self._until_written(memoryview(b""))

    async def _until_written(self, data: memoryview) -> None:
        """Let the loop feed `data` to the device as it frees room (empty: wait until it has).

        The registration outlives the buffer: the next buffer usually meets a full device at
        once, and an idle wake-up (nothing pending) is what ends the registration."""
        loop = asyncio.get_running_loop()
        self._pending, self._waiter = data, loop.create_future()
        if self._watching is None:
            try:
                loop.add_writer(self.fd, self._on_writable)
            except PermissionError:
                self.pollable = False
                self._pending = self._waiter = None
                while data:
                    data = self._write_some(data)
                return
            self._watching = loop
        try:
            await self._waiter
        except BaseException:
            self._stop_watching()
            raise
        finally:
            self._pending = self._waiter = None

    def _on_writable(self) -> None:
        waiter, pending = self._waiter, self._pending
        if waiter is None or waiter.done() or pending is None:
            self._stop_watching()  # nothing to write: stop the level-triggered wake-ups
            return
        try:
            self._pending = self._write_some(pending)
        except DeviceError as err:
            waiter.set_exception(err)
            return
        if not self._pending:
            waiter.set_result(None)

    def _stop_watching(self) -> None:
        if self._watching is not None:
            self._watching.remove_writer(self.fd)
            self._watching = None

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        try:
            loop.add_reader(self.fd, lambda: waiter.done() or waiter.set_result(None))
        except PermissionError:
            return  # not pollable: read() then returns what there is, or b""
        try:
            await waiter
        finally:
            loop.remove_reader(self.fd)

    async def read(self) -> bytes:
        while True:
            try:
                return os.read(self.fd, BACKCHANNEL_CHUNK)
            except BlockingIOError:
                await self._readable()
            except OSError as err:
                if err.errno == errno.EIO:  # pty whose other side closed: no more status
                    return b""
                raise DeviceError(f"read failed: {_describe(err)}") from err

    def close(self, completed: bool) -> None:
        if self.fd is not None:
            self._stop_watching()
            os.close(self.fd)
            self.fd = None


class FileChannel(Channel):
    """A regular file: writes complete at once, so there is nothing to poll."""

    def __init__(self, fd: int, path: Path, final_path: Path | None = None) -> None:
        self.fd = fd
        self.path = path
        self.final_path = final_path
        self.written = 0

    async def write(self, data: memoryview) -> None:
        try:
            while data:
                written = os.write(self.fd, data)
                self.written += written
                data = data[written:]
        except OSError as err:
            raise DeviceError(f"write failed: {_describe(err)}") from err

    def close(self, completed: bool) -> None:
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        if self.final_path is not None and not self.written:
            os.unlink(self.path)  # a connection that sent nothing (a port probe) is no job
        elif self.final_path is not None:
            target = self.final_path if completed else self.final_path.with_suffix(".incomplete")
            os.replace(self.path, target)
            log.info("spooled job to %s", target)


@dataclass
class Device:
    """Where a printer's data goes, as named by the config's `device` option or the USB layer."""

    path: str
    kind: str = field(init=False)
    pollable: bool = field(init=False, default=True)  # learnt on the first job

    def __post_init__(self) -> None:
        self.kind = device_kind(self.path)

    @property
    def present(self) -> bool:
        return os.path.exists(self.path)

    async def open(self, bidirectional: bool) -> Channel:
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        while True:
            try:
                return self._open_now(bidirectional)
            except OSError as err:
                if err.errno in OPEN_RETRY_ERRNOS and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    continue
                raise DeviceError(f"cannot open {self.path}: {_describe(err)}") from err

    def _open_now(self, bidirectional: bool) -> Channel:
        if self.kind == "spool":
            return _open_spool_file(Path(self.path))
        if self.kind == "file":
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            return FileChannel(fd, Path(self.path))
        if self.kind == "fifo":
            # O_RDWR keeps the open from failing while no reader is attached yet.
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            return PollingChannel(fd, can_read=False)
        mode = os.O_RDWR if bidirectional else os.O_WRONLY
        fd = os.open(self.path, mode | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        return PollingChannel(fd, can_read=bidirectional, pollable=self.pollable)

    def learn(self, channel: Channel) -> None:
        """Keep what a finished job found out about the device for the next one."""
        if isinstance(channel, PollingChannel):
            self.pollable = channel.pollable


def device_kind(path: str) -> str:
    """'spool' (directory), 'char', 'fifo' or 'file'; a missing path counts as a char device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "char"
    if stat.S_ISDIR(mode):
        return "spool"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISREG(mode):
        return "file"
    return "char"


def _open_spool_file(directory: Path) -> FileChannel:
    """Each job becomes its own file; it gets its final name only once it is complete."""
    while True:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"job-{stamp}-{time.time_ns() % 1_000_000_000:09d}"
        part = directory / f".{name}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        return FileChannel(fd, part, final_path=directory / f"{name}.prn")
