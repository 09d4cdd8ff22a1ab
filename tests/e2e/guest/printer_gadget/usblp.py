"""The computer's end of the cable: /dev/usb/lpN through usblp, used as a test oracle.

Deliberately independent of usbprintd's own device code, so the harness self-tests check the
kernel stack and the gadget rather than one implementation against itself.  Every call has a
timeout: usblp writes block until the printer reads (pitfall P6).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import time
from pathlib import Path

IOC_READ = 2
DEVICE_ID_SIZE = 1024
LPGETSTATUS = 0x060B


def _ioc_read(number: int, size: int, kind: str = "P") -> int:
    return (IOC_READ << 30) | (size << 16) | (ord(kind) << 8) | number


LPIOC_GET_DEVICE_ID = _ioc_read(1, DEVICE_ID_SIZE)
LPIOC_GET_BUS_ADDRESS = _ioc_read(5, 8)
LPIOC_GET_VID_PID = _ioc_read(6, 8)

STATUS_NOT_ERROR = 0x08
STATUS_SELECTED = 0x10
STATUS_PAPER_OUT = 0x20


def open_lp(path: Path | str, timeout: float = 5.0) -> int:
    """Non-blocking fd on an lp node; retries while the node is still appearing or busy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.EBUSY, errno.ENODEV) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def device_id(fd: int) -> str:
    """IEEE 1284 ID via a fresh GET_DEVICE_ID request (sysfs holds the probe-time copy)."""
    buffer = bytearray(DEVICE_ID_SIZE)
    fcntl.ioctl(fd, LPIOC_GET_DEVICE_ID, buffer)
    (length,) = struct.unpack_from(">H", buffer)
    return bytes(buffer[2:max(2, min(length, DEVICE_ID_SIZE))]).decode("latin-1")


def port_status(fd: int) -> int:
    """The printer's GET_PORT_STATUS byte (0x18 ready, 0x30 paper out)."""
    buffer = bytearray(4)
    fcntl.ioctl(fd, LPGETSTATUS, buffer)
    return struct.unpack("i", buffer)[0]


def vid_pid(fd: int) -> tuple[int, int]:
    buffer = bytearray(8)
    fcntl.ioctl(fd, LPIOC_GET_VID_PID, buffer)
    return struct.unpack("ii", buffer)


def bus_address(fd: int) -> tuple[int, int]:
    buffer = bytearray(8)
    fcntl.ioctl(fd, LPIOC_GET_BUS_ADDRESS, buffer)
    return struct.unpack("ii", buffer)


def write_all(fd: int, data: bytes, timeout: float = 10.0) -> None:
    """Write everything or raise TimeoutError (the printer stopped reading)."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{len(view)} of {len(data)} bytes not accepted within {timeout} s")
        select.select([], [fd], [], remaining)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue


def wait_writable(fd: int, timeout: float) -> bool:
    """True once the previous write has completed (usblp has one write URB in flight)."""
    return bool(select.select([], [fd], [], timeout)[1])


def read_back_channel(fd: int, size: int, timeout: float = 5.0) -> bytes:
    """Read until `size` bytes arrived from the printer or `timeout` passed."""
    chunks: list[bytes] = []
    received = 0
    deadline = time.monotonic() + timeout
    while received < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not select.select([fd], [], [], remaining)[0]:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)
