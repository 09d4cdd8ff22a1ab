"""Printers the kernel does not give us an lp device for, and why.

sysfs lists printer-class interfaces (7/1/x) without a usblp child cheaply; libusb (pyusb) is
brought in only when there is such a printer, to ask it for its IEEE 1284 device ID — the one
thing sysfs cannot tell without usblp — so the owner sees "HP LaserJet Pro M404: IPP-over-USB
only" rather than a bare USB id. The daemon works without pyusb or libusb: the list is then
built from sysfs alone, and that is logged once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from usbprintd.usb.ieee1284 import decode_device_id, make_and_model, parse_device_id
from usbprintd.usb.sysfs import UnboundPrinter, find_unbound_printers

log = logging.getLogger(__name__)

GET_DEVICE_ID_REQUEST = 0  # printer class request GET_DEVICE_ID
CLASS_INTERFACE_IN = 0xA1  # device-to-host, class, interface
CONTROL_TIMEOUT_MS = 1000


class LibusbScanner:
    """Describes unbound printers; pyusb is imported on first need, and only then."""

    def __init__(self, sys_root: Path = Path("/sys")) -> None:
        self.sys_root = sys_root
        self._usb_core: Any = None
        self._unavailable = ""
        self._told: set[tuple[str, str, str]] = set()

    def scan(self) -> list[dict[str, str]]:
        """One entry per unserved printer: identity, name, device_id and the reason."""
        unbound = find_unbound_printers(self.sys_root)
        entries = [self._describe(printer) for printer in unbound]
        self._log_news(unbound, entries)
        return entries

    def _describe(self, printer: UnboundPrinter) -> dict[str, str]:
        device_id = self._read_device_id(printer) if not printer.driver else ""
        fields = parse_device_id(device_id)
        identity = printer.identity
        name = (make_and_model(fields, identity.manufacturer, identity.product)
                or f"USB printer {identity.usb_id}")
        return {**identity.as_dict(), "name": name, "device": "", "device_id": device_id,
                "protocols": ",".join(f"7/1/{p}" for p in printer.protocols),
                "reason": printer.reason}

    def _log_news(self, unbound: Iterable[UnboundPrinter], entries: list[dict[str, str]]) -> None:
        keys = [p.identity.key for p in unbound]
        for key, entry in zip(keys, entries, strict=True):
            if key not in self._told:
                log.warning("USB printer %s (%s) is not served: %s", entry["name"],
                            f"{entry['usb_id']}, {entry['serial'] or entry['usb_path']}",
                            entry["reason"])
                if entry["device_id"]:
                    log.info("%s: device ID read through libusb: '%s'", entry["usb_id"],
                             entry["device_id"])
        self._told = set(keys)

    # --- libusb ----------------------------------------------------------------------------

    def _core(self) -> Any:
        if self._usb_core is None and not self._unavailable:
            try:
                import usb.core

                usb.core.find(find_all=True)  # raises NoBackendError without libusb
                self._usb_core = usb.core
            except Exception as err:  # ImportError, NoBackendError, ctypes errors
                self._unavailable = str(err) or type(err).__name__
                log.info("pyusb/libusb not available (%s): printers without a usblp device "
                         "are described from sysfs only", self._unavailable)
        return self._usb_core

    def _read_device_id(self, printer: UnboundPrinter) -> str:
        """GET_DEVICE_ID through libusb; '' when pyusb is absent or the printer does not say."""
        core = self._core()
        if core is None:
            return ""
        identity = printer.identity
        device = core.find(idVendor=int(identity.vid, 16), idProduct=int(identity.pid, 16),
                           bus=identity.busnum, address=identity.devnum)
        if device is None:
            return ""
        try:
            config_index = device.get_active_configuration().bConfigurationValue - 1
            reply = device.ctrl_transfer(CLASS_INTERFACE_IN, GET_DEVICE_ID_REQUEST,
                                         config_index, printer.interface << 8, 1024,
                                         CONTROL_TIMEOUT_MS)
            return decode_device_id(bytes(reply))
        except Exception as err:  # usb.core.USBError: busy, stalled, gone
            log.debug("%s: GET_DEVICE_ID through libusb failed: %s", identity.usb_id, err)
            return ""
        finally:
            with contextlib.suppress(Exception):
                import usb.util

                usb.util.dispose_resources(device)
