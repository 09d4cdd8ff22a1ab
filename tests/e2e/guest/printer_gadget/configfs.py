"""A configfs USB gadget with one `usb_f_printer` function, bound to a dummy_hcd UDC.

Binding makes the same kernel enumerate the gadget on the paired dummy_hcd bus: usblp then
creates /dev/usb/lpN (the computer's side) while usb_f_printer creates /dev/g_printerM (the
printer's side).  The kernel allows at most 4 printer gadgets to exist at once, bound or not
(PRINTER_MINORS); a Printer creates its gadget at the first plug() and deletes it in remove().
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from .waiting import wait_for

GADGET_ROOT = Path("/sys/kernel/config/usb_gadget")
UDC_CLASS = Path("/sys/class/udc")
PRINTER_GADGET_CLASS = Path("/sys/class/usb_printer_gadget")
FUNCTION = "printer.usb0"
CONFIG = "c.1"
LANGUAGE = "0x409"
PRINTER_MINORS = 4  # f_printer.c: function instances (created, bound or not) at once
# P1: usb_f_printer (6.1) reports strlen(pnp_string) as the 1284 length, which must count its
# own 2 bytes, and sends that many bytes including the header; hosts therefore drop the last two
# characters.  Two padding characters, never transmitted, give hosts the exact string.
PNP_PADDING = "  "


class TooManyPrinters(RuntimeError):
    """A fifth printer gadget: usb_f_printer has only PRINTER_MINORS minor numbers."""


@dataclass(frozen=True)
class UsbIdentity:
    """What the descriptors say; `serial=None` makes a printer without a serial number."""

    vendor_id: int
    product_id: int
    manufacturer: str
    product: str
    serial: str | None = None
    bcd_device: int = 0x0100


def udc_names() -> list[str]:
    """dummy_udc.0 .. dummy_udc.N-1, in numeric order."""
    names = [entry.name for entry in UDC_CLASS.iterdir()] if UDC_CLASS.exists() else []
    return sorted(names, key=lambda name: int(name.rpartition(".")[2] or 0))


def bound_udcs() -> set[str]:
    """UDCs some configfs gadget (ours or not) is bound to right now."""
    bound = set()
    for gadget in GADGET_ROOT.iterdir() if GADGET_ROOT.exists() else ():
        udc = (gadget / "UDC").read_text().strip()
        if udc:
            bound.add(udc)
    return bound


def host_bus_platform_device(udc: str) -> str:
    """dummy_hcd pairs dummy_udc.K with the host controller platform device dummy_hcd.K."""
    return udc.replace("dummy_udc", "dummy_hcd")


def _write(path: Path, value: str) -> None:
    with path.open("w") as attribute:
        attribute.write(value)


def _printer_nodes() -> set[str]:
    return {entry.name for entry in PRINTER_GADGET_CLASS.iterdir()} \
        if PRINTER_GADGET_CLASS.exists() else set()


class PrinterGadget:
    """The configfs tree of one gadget; `bind()` is plugging the cable in."""

    def __init__(self, name: str, identity: UsbIdentity, pnp_string: str, q_len: int = 10):
        self.path = GADGET_ROOT / name
        self.identity = identity
        self._initial_pnp = pnp_string
        self.q_len = q_len
        self.device_node: Path | None = None  # /dev/g_printerM while bound

    @property
    def function_path(self) -> Path:
        return self.path / "functions" / FUNCTION

    def create(self) -> None:
        """Write the configfs tree; a half-made tree is removed again if this fails."""
        try:
            self._create()
        except BaseException:
            self.remove()
            raise

    def _create(self) -> None:
        identity = self.identity
        self.path.mkdir()
        _write(self.path / "idVendor", f"0x{identity.vendor_id:04x}")
        _write(self.path / "idProduct", f"0x{identity.product_id:04x}")
        _write(self.path / "bcdDevice", f"0x{identity.bcd_device:04x}")
        _write(self.path / "bcdUSB", "0x0200")
        strings = self.path / "strings" / LANGUAGE
        strings.mkdir(parents=True)
        _write(strings / "manufacturer", identity.manufacturer)
        _write(strings / "product", identity.product)
        if identity.serial is not None:
            _write(strings / "serialnumber", identity.serial)
        config = self.path / "configs" / CONFIG
        (config / "strings" / LANGUAGE).mkdir(parents=True)
        _write(config / "strings" / LANGUAGE / "configuration", "Printer")
        try:
            self.function_path.mkdir(parents=True)
        except OSError as error:
            if error.errno == errno.ENODEV:
                raise TooManyPrinters(
                    f"usb_f_printer allows {PRINTER_MINORS} printer gadgets at once") from error
            raise
        self.pnp_string = self._initial_pnp
        _write(self.function_path / "q_len", str(self.q_len))
        (config / FUNCTION).symlink_to(self.function_path)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def pnp_string(self) -> str:
        """The ID as hosts receive it (configfs adds a newline when read, P7)."""
        text = (self.function_path / "pnp_string").read_text().removesuffix("\n")
        return text.removesuffix(PNP_PADDING)

    @pnp_string.setter
    def pnp_string(self, value: str) -> None:
        """Takes effect at the next GET_DEVICE_ID request, also while bound (no re-enumeration)."""
        _write(self.function_path / "pnp_string", value + PNP_PADDING)

    @property
    def udc(self) -> str | None:
        """The UDC it is bound to; None while unbound or not created."""
        if not self.exists:
            return None
        return (self.path / "UDC").read_text().strip() or None

    def bind(self, udc: str) -> Path:
        """Attach to `udc`; returns /dev/g_printerM, the node the printer side reads."""
        before = _printer_nodes()
        _write(self.path / "UDC", udc)
        created = _printer_nodes() - before
        if len(created) != 1:
            raise RuntimeError(f"binding {self.path.name} created printer nodes {created}")
        self.device_node = Path("/dev") / created.pop()
        wait_for(self.device_node.exists, 5.0, f"{self.device_node} to appear")
        return self.device_node

    def unbind(self) -> None:
        """Detach from the UDC.  The caller must have closed /dev/g_printerM first (P3)."""
        if self.udc:
            _write(self.path / "UDC", "\n")
        self.device_node = None

    def remove(self) -> None:
        """Delete the tree (innermost first), whatever part of it exists."""
        if not self.exists:
            return
        self.unbind()
        config = self.path / "configs" / CONFIG
        if (config / FUNCTION).is_symlink():
            (config / FUNCTION).unlink()
        for directory in (config / "strings" / LANGUAGE, config, self.function_path,
                          self.path / "strings" / LANGUAGE, self.path):
            if directory.exists():
                directory.rmdir()


def lp_node_for(udc: str) -> Path | None:
    """/dev/usb/lpN that usblp created for the printer on `udc`'s bus, if any yet."""
    platform = f"/{host_bus_platform_device(udc)}/"
    usbmisc = Path("/sys/class/usbmisc")
    for entry in sorted(usbmisc.iterdir()) if usbmisc.exists() else ():
        if entry.name.startswith("lp") and platform in os.path.realpath(entry / "device"):
            node = Path("/dev/usb") / entry.name
            return node if node.exists() else None
    return None


def usb_device_for(udc: str) -> Path | None:
    """The sysfs usb_device (e.g. /sys/bus/usb/devices/2-1) enumerated on `udc`'s bus."""
    platform = host_bus_platform_device(udc)
    devices = Path("/sys/bus/usb/devices")
    for entry in sorted(devices.iterdir()):
        if "-" in entry.name and ":" not in entry.name \
                and f"/{platform}/" in os.path.realpath(entry):
            return entry
    return None
