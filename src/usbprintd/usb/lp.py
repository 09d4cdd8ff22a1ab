"""The usblp character device (/dev/usb/lpN): ioctls, status decoding and opening.

The kernel checks the direction and size encoded in an ioctl number, and that encoding differs
between CPU families (x86/ARM use 2 direction bits at bit 30, MIPS/PowerPC 3 bits at bit 29), so
the numbers are computed for the running machine instead of being hard-coded. MIPS is the most
common router CPU.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from typing import Protocol

from usbprintd.usb.ieee1284 import decode_device_id

DEVICE_ID_SIZE = 1024  # usblp's USBLP_DEVICE_ID_SIZE: the ID plus its 2-byte length
IOC_TYPE_LP = ord("P")
IOCNR_GET_DEVICE_ID = 1
IOCNR_GET_VID_PID = 6
LPGETSTATUS = 0x060B  # old-style number, the same on every architecture

# Status byte bits (include/uapi/linux/lp.h), as usblp_check_status() reads them.
LP_PERRORP = 0x08  # active low: 0 means the printer reports an error
LP_PSELECD = 0x10  # 1 means selected / on-line
LP_POUTPA = 0x20  # 1 means paper out

# open() errors that mean "not yet" right after a hotplug event: the node is still being made
# (procd creates /dev on OpenWrt), its permissions are not set yet, or someone else has it open.
OPEN_RETRY_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EBUSY,
                               errno.ENXIO, errno.EAGAIN})


@dataclass(frozen=True)
class IocLayout:
    """How one CPU family encodes _IOC(dir, type, nr, size)."""

    none: int
    read: int
    write: int
    dir_shift: int
    size_bits: int


GENERIC_LAYOUT = IocLayout(none=0, read=2, write=1, dir_shift=30, size_bits=14)
MIPS_PPC_LAYOUT = IocLayout(none=1, read=2, write=4, dir_shift=29, size_bits=13)
_THREE_DIR_BIT_MACHINES = ("mips", "ppc", "powerpc", "sparc", "alpha")


def layout_for(machine: str) -> IocLayout:
    """The ioctl encoding of a `uname -m` machine name."""
    if machine.lower().startswith(_THREE_DIR_BIT_MACHINES):
        return MIPS_PPC_LAYOUT
    return GENERIC_LAYOUT


def ioc(layout: IocLayout, direction: str, nr: int, size: int, kind: int = IOC_TYPE_LP) -> int:
    """_IOC(): `direction` is 'none', 'read' or 'write' (seen from user space)."""
    if not 0 <= size < 1 << layout.size_bits:
        raise ValueError(f"ioctl size {size} does not fit in {layout.size_bits} bits")
    return (getattr(layout, direction) << layout.dir_shift) | (size << 16) | (kind << 8) | nr


@dataclass(frozen=True)
class LpIoctls:
    get_device_id: int
    get_vid_pid: int
    get_status: int = LPGETSTATUS

    @classmethod
    def for_layout(cls, layout: IocLayout) -> LpIoctls:
        return cls(
            get_device_id=ioc(layout, "read", IOCNR_GET_DEVICE_ID, DEVICE_ID_SIZE),
            get_vid_pid=ioc(layout, "read", IOCNR_GET_VID_PID, 8),
        )

    @classmethod
    def native(cls) -> LpIoctls:
        return cls.for_layout(layout_for(os.uname().machine))


# --- status ---------------------------------------------------------------------------------

STATUS_TEXT = {
    "online": "online",
    "offline": "off-line",
    "paper-out": "paper out",
    "error": "printer error",
}


def decode_status(status: int) -> str:
    """'online', 'offline', 'paper-out' or 'error', with the kernel's precedence (usblp reports
    off-line over paper out over a generic error)."""
    if not status & LP_PSELECD:
        return "offline"
    if status & LP_POUTPA:
        return "paper-out"
    if not status & LP_PERRORP:
        return "error"
    return "online"


# --- the device ---------------------------------------------------------------------------------


class LpOps(Protocol):
    """What the USB layer does with a printer device; tests substitute a fake."""

    def open(self, path: str) -> int: ...

    def device_id(self, fd: int) -> str: ...

    def status(self, fd: int) -> int: ...


class UsblpOps:
    """The real thing: usblp ioctls on /dev/usb/lpN."""

    def __init__(self, ioctls: LpIoctls | None = None) -> None:
        self.ioctls = ioctls or LpIoctls.native()

    def open(self, path: str) -> int:
        """Non-blocking and write-only: usblp allows one opener, so callers close it quickly."""
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)

    def device_id(self, fd: int) -> str:
        """A fresh GET_DEVICE_ID request (sysfs `ieee1284_id` is cached from probe time)."""
        buffer = bytearray(DEVICE_ID_SIZE)
        fcntl.ioctl(fd, self.ioctls.get_device_id, buffer, True)
        return decode_device_id(bytes(buffer))

    def vid_pid(self, fd: int) -> tuple[int, int]:
        buffer = bytearray(8)
        fcntl.ioctl(fd, self.ioctls.get_vid_pid, buffer, True)
        vid, pid = struct.unpack("ii", buffer)
        return vid, pid

    def status(self, fd: int) -> int:
        buffer = bytearray(4)
        fcntl.ioctl(fd, self.ioctls.get_status, buffer, True)
        return struct.unpack("i", buffer)[0] & 0xFF


async def open_when_ready(ops: LpOps, path: str, patience: float, interval: float = 0.1) -> int:
    """open() the node, retrying the 'not yet' errors for up to `patience` seconds; the last
    error is raised when it never opens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            return ops.open(path)
        except OSError as err:
            if err.errno not in OPEN_RETRY_ERRNOS or loop.time() >= deadline:
                raise
        await asyncio.sleep(interval)
