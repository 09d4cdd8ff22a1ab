"""Reading USB printers out of sysfs.

Identity comes from the attributes of the lp device's parents (the usb_interface and the
usb_device), never from udev's ID_* properties: libudev-zero on OpenWrt has none of those, and
sysfs is the same everywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from usbprintd.usb.identity import UsbIdentity

log = logging.getLogger(__name__)

PRINTER_CLASS = "07"
PRINTER_SUBCLASS = "01"
IPP_USB_PROTOCOL = 4


class NotAUsbPrinter(Exception):
    """The path has no USB device above it (or vanished while being read)."""


def read_attribute(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text(errors="replace").strip()
    except OSError:
        return ""


def _int_attribute(directory: Path, name: str, base: int = 10) -> int | None:
    try:
        return int(read_attribute(directory, name), base)
    except ValueError:
        return None


def _ancestor_with(path: Path, attribute: str) -> Path | None:
    for directory in (path, *path.parents):
        if (directory / attribute).exists():
            return directory
    return None


def identity_of_device(device_dir: Path, protocol: int | None = None) -> UsbIdentity:
    vid = read_attribute(device_dir, "idVendor").lower()
    pid = read_attribute(device_dir, "idProduct").lower()
    if not vid or not pid:
        raise NotAUsbPrinter(f"{device_dir}: no idVendor/idProduct")
    return UsbIdentity(
        vid=vid,
        pid=pid,
        serial=read_attribute(device_dir, "serial"),
        usb_path=device_dir.name,
        manufacturer=read_attribute(device_dir, "manufacturer"),
        product=read_attribute(device_dir, "product"),
        protocol=protocol,
        busnum=_int_attribute(device_dir, "busnum") or 0,
        devnum=_int_attribute(device_dir, "devnum") or 0,
    )


def read_identity(lp_sys_path: Path) -> UsbIdentity:
    """Identity of the printer behind /sys/devices/.../1-1:1.0/usbmisc/lp0."""
    real = lp_sys_path.resolve()
    interface = _ancestor_with(real, "bInterfaceProtocol")
    device = _ancestor_with(real, "idVendor")
    if device is None:
        raise NotAUsbPrinter(f"{lp_sys_path}: not below a USB device")
    protocol = _int_attribute(interface, "bInterfaceProtocol", 16) if interface else None
    return identity_of_device(device, protocol)


@dataclass(frozen=True)
class UnboundPrinter:
    """A USB printer interface with no usblp device: why it cannot be served."""

    identity: UsbIdentity
    protocols: tuple[int, ...]  # bInterfaceProtocol of its printer interfaces
    driver: str  # the driver bound to its printer interface(s), '' for none
    interface: int  # number of the first printer interface
    usblp_loaded: bool

    @property
    def reason(self) -> str:
        if set(self.protocols) == {IPP_USB_PROTOCOL}:
            return "IPP-over-USB only (interface 7/1/4), which usblp cannot drive"
        if not self.usblp_loaded:
            return "the usblp driver is not loaded (install kmod-usb-printer)"
        if self.driver and self.driver != "usblp":
            return f"its printer interface is held by '{self.driver}' (another program)"
        return "usblp did not take it (no /dev/usb/lp device)"


def find_unbound_printers(sys_root: Path = Path("/sys")) -> list[UnboundPrinter]:
    """Printer-class interfaces (7/1/x) without a usbmisc lp child, one entry per device."""
    devices_dir = sys_root / "bus" / "usb" / "devices"
    usblp_loaded = (sys_root / "module" / "usblp").exists()
    per_device: dict[Path, list[Path]] = {}
    served: set[Path] = set()
    try:
        entries = sorted(devices_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        if ":" not in entry.name:
            continue
        if (read_attribute(entry, "bInterfaceClass") != PRINTER_CLASS
                or read_attribute(entry, "bInterfaceSubClass") != PRINTER_SUBCLASS):
            continue
        device_dir = entry.resolve().parent
        if (entry / "usbmisc").exists():
            served.add(device_dir)
        per_device.setdefault(device_dir, []).append(entry)
    result = []
    for device_dir, interfaces in per_device.items():
        if device_dir in served:
            continue
        try:
            identity = identity_of_device(device_dir)
        except NotAUsbPrinter:
            continue
        protocols = tuple(sorted({_int_attribute(i, "bInterfaceProtocol", 16) or 0
                                  for i in interfaces}))
        drivers = [(i / "driver").resolve().name for i in interfaces if (i / "driver").exists()]
        result.append(UnboundPrinter(
            identity=identity,
            protocols=protocols,
            driver=drivers[0] if drivers else "",
            interface=_int_attribute(interfaces[0], "bInterfaceNumber", 16) or 0,
            usblp_loaded=usblp_loaded,
        ))
    return result
