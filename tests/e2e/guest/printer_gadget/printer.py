"""`Printer`: a simulated USB printer on the guest's real kernel USB stack.

Combines the configfs gadget (the cable and descriptors) with the device-side channel (the
printer's mechanics): it records everything the computer sends, answers on the back channel,
reports paper-out through the port status and, for firmware printers (HP LaserJet 10xx), adds
`FWVER:` to its IEEE 1284 ID once it has received the firmware blob.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import kmod
from .configfs import (
    PRINTER_MINORS,
    PrinterGadget,
    UsbIdentity,
    bound_udcs,
    lp_node_for,
    udc_names,
    usb_device_for,
)
from .device_side import DeviceChannel
from .usblp import STATUS_NOT_ERROR, STATUS_PAPER_OUT, STATUS_SELECTED
from .waiting import wait_for

log = logging.getLogger(__name__)

UDC_COUNT = PRINTER_MINORS  # more UDCs than printer gadgets would be of no use
GADGET_PACKET = 512  # high-speed bulk max packet
GADGET_REQUEST = 8192  # usb_f_printer OUT request size


def tail_may_stall(size: int) -> bool:
    """P2: a transfer ending on a packet boundary but not on an 8 KiB request boundary.

    usblp sends no zero-length packet, so usb_f_printer keeps such a tail in its request
    until more data arrives.  A real printer has no such problem; pick payload sizes for
    which this is False when the test needs the last byte to arrive on its own.
    """
    return size % GADGET_PACKET == 0 and size % GADGET_REQUEST != 0


@dataclass(frozen=True)
class Firmware:
    """The printer needs `size` bytes of firmware before its ID says `FWVER:<version>`."""

    size: int
    version: str = "20041006"

    def __post_init__(self) -> None:
        if tail_may_stall(self.size):
            raise ValueError(f"a {self.size}-byte firmware would stall in the gadget (P2)")


@dataclass(frozen=True)
class PrinterModel:
    identity: UsbIdentity
    pnp_string: str
    firmware: Firmware | None = None

    def with_serial(self, serial: str | None) -> PrinterModel:
        return replace(self, identity=replace(self.identity, serial=serial))


def hp_laserjet_1018(serial: str | None = "FAKE1018SN0001", firmware_size: int = 190_001,
                     fwver: str = "20041006") -> PrinterModel:
    """03f0:4117, host-based: needs its firmware after every power-on (FWVER in the ID)."""
    return PrinterModel(
        UsbIdentity(0x03F0, 0x4117, "Hewlett-Packard", "HP LaserJet 1018", serial),
        "MFG:Hewlett-Packard;MDL:HP LaserJet 1018;CMD:ACL;CLS:PRINTER;DES:HP LaserJet 1018;",
        Firmware(firmware_size, fwver),
    )


def generic_printer(serial: str | None = "E2E0001") -> PrinterModel:
    """A plain PCL printer with the Linux printer gadget's own IDs (0525:a4a8)."""
    return PrinterModel(
        UsbIdentity(0x0525, 0xA4A8, "Linux", "E2E Test Printer", serial),
        "MFG:Linux;MDL:E2E Test Printer;CMD:PCL,PJL;CLS:PRINTER;DES:E2E Test Printer;",
    )


class UsbStack:
    """dummy_hcd with UDC_COUNT controller pairs, libcomposite, usb_f_printer, usblp."""

    def __init__(self) -> None:
        kmod.modprobe("configfs")
        if " /sys/kernel/config configfs " not in Path("/proc/mounts").read_text():
            subprocess.run(["mount", "-t", "configfs", "none", "/sys/kernel/config"], check=True)
        for module, params in (("dummy_hcd", f"num={UDC_COUNT}"), ("libcomposite", ""),
                               ("usb_f_printer", ""), ("usblp", "")):
            kmod.modprobe(module, params)
        self.udcs = wait_for(lambda: len(udc_names()) == UDC_COUNT and udc_names(), 5.0,
                             f"{UDC_COUNT} dummy UDCs")

    def free_udc(self) -> str:
        """The first UDC no gadget is bound to: a free "USB port"."""
        bound = bound_udcs()
        for udc in self.udcs:
            if udc not in bound:
                return udc
        raise RuntimeError(f"all {len(self.udcs)} dummy UDCs are in use")


class Printer:
    """One simulated printer.  Thread-safe; data arrives on the device-side thread."""

    def __init__(self, stack: UsbStack, name: str, model: PrinterModel, q_len: int = 10):
        self.stack = stack
        self.name = name
        self.model = model
        self.gadget = PrinterGadget(name, model.identity, model.pnp_string, q_len)
        self._channel: DeviceChannel | None = None
        self._received = bytearray()
        self._firmware_end: int | None = None  # offset in _received where print data starts
        self._first_data_at: float | None = None  # time.monotonic() of the first byte
        self._changed = threading.Condition()
        self._status = STATUS_SELECTED | STATUS_NOT_ERROR
        self._holding = False
        self.errors: list[BaseException] = []  # from device-side threads of past plugs

    # -- cable ---------------------------------------------------------------------------

    def plug(self, udc: str | None = None, wait: bool = True, timeout: float = 10.0) -> Path | None:
        """Connect to `udc` (default: the first free one); returns /dev/usb/lpN if `wait`."""
        if self.plugged:
            raise RuntimeError(f"{self.name} is already plugged into {self.gadget.udc}")
        if not self.gadget.exists:
            self.gadget.create()
        node = self.gadget.bind(udc or self.stack.free_udc())
        with self._changed:
            self._first_data_at = None
        self._channel = DeviceChannel(node, self._on_data)
        self._channel.hold(self._holding)
        default = self._status == STATUS_SELECTED | STATUS_NOT_ERROR  # what open() sets
        self._channel.open(timeout, status=None if default else self._status)
        return self.wait_lp(timeout) if wait else None

    def unplug(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Pull the cable: close the device side first (P3), then unbind."""
        udc = self.gadget.udc
        if self._channel is not None:
            self._channel.close()
            self.errors += self._channel.errors
            self._channel = None
        self.gadget.unbind()
        if wait and udc:
            wait_for(lambda: lp_node_for(udc) is None, timeout, f"{self.name}'s lp node to go")

    def power_cycle(self) -> Path | None:
        """Unplug, forget the firmware (RAM-only on these printers) and any live ID change,
        plug into the same port."""
        udc = self.gadget.udc
        self.unplug()
        self.forget_firmware()
        return self.plug(udc)

    def forget_firmware(self) -> None:
        """What losing power does to these printers: the blob and any live ID change are gone
        (call while unplugged, then plug again)."""
        self.gadget.pnp_string = self.model.pnp_string
        with self._changed:
            self._firmware_end = None

    def remove(self) -> None:
        """Unplug and delete the gadget from configfs (test teardown)."""
        self.unplug()
        self.gadget.remove()

    @property
    def plugged(self) -> bool:
        return self.gadget.udc is not None

    @property
    def udc(self) -> str | None:
        return self.gadget.udc

    @property
    def lp_path(self) -> Path | None:
        """/dev/usb/lpN on the computer's side, None while unplugged or not yet probed."""
        udc = self.udc
        return lp_node_for(udc) if udc else None

    @property
    def usb_device(self) -> Path | None:
        """Its sysfs usb_device, e.g. /sys/bus/usb/devices/2-1 (name = the usb_path)."""
        udc = self.udc
        return usb_device_for(udc) if udc else None

    def wait_lp(self, timeout: float = 10.0) -> Path:
        return wait_for(lambda: self.lp_path, timeout, f"usblp to create {self.name}'s lp node")

    # -- data ----------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        firmware = self.model.firmware
        with self._changed:
            if self._first_data_at is None:
                self._first_data_at = time.monotonic()
            self._received += data
            if firmware and self._firmware_end is None and len(self._received) >= firmware.size:
                self._firmware_end = firmware.size
                self.gadget.pnp_string = f"{self.gadget.pnp_string}FWVER:{firmware.version};"
                log.info("%s: firmware %s loaded", self.name, firmware.version)
            self._changed.notify_all()

    def received(self, after_firmware: bool = False) -> bytes:
        """Everything the computer sent; with `after_firmware`, only what followed the blob."""
        with self._changed:
            start = (self._firmware_end or len(self._received)) if after_firmware else 0
            return bytes(self._received[start:])

    def wait_received(self, size: int, timeout: float = 10.0,
                      after_firmware: bool = False) -> bytes:
        """Wait until at least `size` bytes arrived; returns them all."""
        def enough() -> bool:
            return len(self.received(after_firmware)) >= size

        with self._changed:
            if not self._changed.wait_for(enough, timeout):
                got = len(self.received(after_firmware))
                hint = " (P2: tail stalls in the gadget)" if tail_may_stall(size) else ""
                raise TimeoutError(f"{self.name}: {got} of {size} bytes after {timeout} s{hint}")
        return self.received(after_firmware)

    @property
    def first_data_at(self) -> float | None:
        """time.monotonic() when the device side read the first byte since the last plug() or
        clear(): for a firmware printer, when the upload reached the printer."""
        with self._changed:
            return self._first_data_at

    def clear(self) -> None:
        with self._changed:
            self._first_data_at = None
            self._received.clear()
            self._firmware_end = 0 if self._firmware_end is not None else None

    @property
    def firmware_loaded(self) -> bool:
        with self._changed:
            return self._firmware_end is not None

    def answer(self, data: bytes) -> None:
        """Back channel: bytes the computer reads from the lp node (PJL status, ...)."""
        self._require_channel().send(data)

    @property
    def unanswered(self) -> int:
        """Back-channel bytes not yet taken by the kernel."""
        return self._require_channel().unsent

    def hold(self, holding: bool = True) -> None:
        """Stop taking data (busy/jammed).  The gadget still buffers q_len x 8 KiB (P6)."""
        self._holding = holding
        if self._channel is not None:
            self._channel.hold(holding)

    # -- status and identity -------------------------------------------------------------

    def set_status(self, status: int) -> None:
        """The GET_PORT_STATUS byte (bits: 0x08 no error, 0x10 selected, 0x20 paper out)."""
        self._status = status
        if self._channel is not None:
            self._channel.status = status

    @property
    def status(self) -> int:
        return self._require_channel().status

    def paper_out(self, out: bool = True, hold: bool = True) -> None:
        """Out of paper: status 0x30 and (by default) stop taking data; False restores both."""
        self.set_status(STATUS_SELECTED | (STATUS_PAPER_OUT if out else STATUS_NOT_ERROR))
        if hold:
            self.hold(out)

    @property
    def pnp_string(self) -> str:
        return self.gadget.pnp_string

    def set_pnp_string(self, value: str) -> None:
        """Change the 1284 ID live; the next LPIOC_GET_DEVICE_ID sees it, sysfs does not (P7)."""
        self.gadget.pnp_string = value

    def check(self) -> None:
        """Raise what went wrong on the device-side thread, if anything."""
        errors = self.errors + (self._channel.errors if self._channel is not None else [])
        if errors:
            raise RuntimeError(f"{self.name} device side failed: {errors[0]!r}") from errors[0]

    def _require_channel(self) -> DeviceChannel:
        if self._channel is None:
            raise RuntimeError(f"{self.name} is not plugged in")
        return self._channel
