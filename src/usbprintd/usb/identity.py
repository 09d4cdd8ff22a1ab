"""Who a USB printer is, and which configured printer section it belongs to.

A printer is (VID, PID, serial), or (VID, PID, USB port path) when it reports no serial; the
/dev/usb/lpN node is only where it happens to be right now. Matching is a pure function of the
present printers, the configuration and the previous assignment, so replugs, renumbering and
two printers of the same model are decided the same way every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from usbprintd.config import Config, PrinterSettings
from usbprintd.usb.text import one_line


@dataclass(frozen=True)
class UsbIdentity:
    """What sysfs says about a printer's USB device and interface."""

    vid: str  # '03f0'
    pid: str  # '4117'
    serial: str = ""
    usb_path: str = ""  # the usb_device's sysfs name: bus and port chain, '1-1.2'
    manufacturer: str = ""
    product: str = ""
    protocol: int | None = None  # bInterfaceProtocol: 1 uni-, 2 bidirectional, 3 IEEE 1284.4
    busnum: int = 0
    devnum: int = 0

    def __post_init__(self) -> None:
        # The printer's own strings, cleaned the same way wherever an identity is made.
        for name in ("serial", "manufacturer", "product"):
            object.__setattr__(self, name, one_line(getattr(self, name)))

    @property
    def usb_id(self) -> str:
        return f"{self.vid}:{self.pid}"

    @property
    def key(self) -> tuple[str, str, str]:
        """Stable across replugs and reboots; the port path only when there is no serial."""
        return (self.usb_id, "serial", self.serial) if self.serial else (
            self.usb_id, "path", self.usb_path)

    def describe(self) -> str:
        where = f"serial {self.serial}" if self.serial else f"USB port {self.usb_path or '?'}"
        return f"{self.usb_id}, {where}"

    def as_dict(self) -> dict[str, str]:
        return {
            "vid": self.vid,
            "pid": self.pid,
            "usb_id": self.usb_id,
            "serial": self.serial,
            "usb_path": self.usb_path,
            "manufacturer": self.manufacturer,
            "product": self.product,
            "protocol": "" if self.protocol is None else str(self.protocol),
        }


@dataclass(frozen=True)
class Candidate:
    """A present printer as matching sees it: an opaque key (its sysfs DEVPATH) and identity."""

    key: str
    identity: UsbIdentity
    node: str = ""


def exact_match(identity: UsbIdentity, printer: PrinterSettings) -> bool:
    """The section names this very printer: usb_id plus every identifying option it gives
    (serial, port path, or both)."""
    if printer.usb_id != identity.usb_id or not (printer.serial or printer.usb_path):
        return False
    return ((not printer.serial or printer.serial == identity.serial)
            and (not printer.usb_path or printer.usb_path == identity.usb_path))


def serial_and_path_match(identity: UsbIdentity, printer: PrinterSettings) -> bool:
    """The section gives both a serial and a port path, and both are this printer's."""
    return bool(printer.serial and printer.usb_path) and exact_match(identity, printer)


def serial_match(identity: UsbIdentity, printer: PrinterSettings) -> bool:
    """The section's printer by its serial alone: it moved to another USB port."""
    return (printer.usb_id == identity.usb_id and bool(printer.serial)
            and printer.serial == identity.serial)


def loose_match(candidate: Candidate, printer: PrinterSettings) -> bool:
    """The section takes any printer of its model (usb_id, no serial, no path), or it pins the
    device node p910nd-style and names no usb_id."""
    if printer.usb_id:
        return (printer.usb_id == candidate.identity.usb_id and not printer.serial
                and not printer.usb_path)
    return bool(printer.device) and printer.device == candidate.node


def assign_sections(
    candidates: Sequence[Candidate], config: Config, previous: Mapping[str, str]
) -> dict[str, str]:
    """candidate key -> printer section, for every candidate that has one.

    Exact identities win first, serial and port path together before a serial alone: some
    models give every unit the same serial, and the port path set at autoadd keeps two of them
    apart; a printer moved to another port is still found by its serial. Then each loose
    section keeps the printer it already had (so a second printer of the same model never
    steals the first one's port), and the remaining loose sections go to the remaining
    printers in arrival order (`candidates`' order)."""
    result: dict[str, str] = {}
    claimed: set[str] = set()

    def claim(candidate: Candidate, section: str) -> None:
        result[candidate.key] = section
        claimed.add(section)

    for matches in (serial_and_path_match, exact_match, serial_match):
        for candidate in candidates:
            if candidate.key in result:
                continue
            section = next((p.section for p in config.printers
                            if p.section not in claimed and matches(candidate.identity, p)), None)
            if section is not None:
                claim(candidate, section)
    loose = [c for c in candidates if c.key not in result]
    for candidate in loose:
        printer = config.printer(previous.get(candidate.key, ""))
        if printer and printer.section not in claimed and loose_match(candidate, printer):
            claim(candidate, printer.section)
    for candidate in loose:
        if candidate.key in result:
            continue
        section = next((p.section for p in config.printers
                        if p.section not in claimed and loose_match(candidate, p)), None)
        if section is not None:
            claim(candidate, section)
    return result


# --- a newly seen printer -------------------------------------------------------------------


def default_bidirectional(identity: UsbIdentity, host_based: bool) -> bool:
    """7/1/2 and 7/1/3 talk back, 7/1/1 does not; host-based HP LaserJets hang when driven
    bidirectionally, so they default to off."""
    if host_based:
        return False
    return identity.protocol in (2, 3)


def unique_label(label: str, taken_names: Iterable[str]) -> str:
    """'HP LaserJet 1018', then 'HP LaserJet 1018 (2)' for a second one of the same model."""
    taken = {name.lower() for name in taken_names}
    name, n = label, 2
    while name.lower() in taken:
        name, n = f"{label} ({n})", n + 1
    return name


def new_printer_values(
    identity: UsbIdentity, host_based: bool, firmware: str
) -> dict[str, Any]:
    """The section values autoadd writes for a printer seen for the first time."""
    return {
        "enabled": True,
        "usb_id": identity.usb_id,
        "serial": identity.serial,
        "usb_path": identity.usb_path,  # with a serial: tells apart units sharing one
        "bidirectional": default_bidirectional(identity, host_based),
        "firmware": firmware,
        "mdns": True,
    }
