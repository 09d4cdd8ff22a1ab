"""The set of present USB printers and what the registry hears about them.

Hotplug (or a rescan) says which lp devices exist; this module keeps a DEVPATH -> printer map
(sysfs is gone by the time a remove event arrives), decides which configured section each
printer is (identity, not device path), adds a section for a printer seen for the first time
when autoadd is on, and reports presence and state through `Registry.set_usb_attachment`.
Printers that cannot be served — not configured, or no usblp device — are reported through
`Registry.set_unserved_usb` so the owner is told why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from usbprintd.appsocket import PrintServer
from usbprintd.config import PrinterSettings
from usbprintd.reconcile import Attachment
from usbprintd.registry import Registry
from usbprintd.uci import UciError
from usbprintd.usb.firmware import firmware_model
from usbprintd.usb.identity import (
    Candidate,
    UsbIdentity,
    assign_sections,
    new_printer_values,
    unique_label,
)
from usbprintd.usb.lp import LpOps
from usbprintd.usb.printer import PrinterTimings, UsbPrinter
from usbprintd.usb.worker import BlockingWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundPrinter:
    """An lp device as discovery sees it: where it lives in sysfs and /dev, and who it is."""

    devpath: str  # DEVPATH, e.g. /devices/.../1-1/1-1:1.0/usbmisc/lp0
    node: str  # /dev/usb/lp0
    identity: UsbIdentity


class UsbPrinters:
    """Present printers keyed by DEVPATH, in arrival order (which breaks ties between two
    printers of the same model). Their blocking device queries share `worker`, which belongs to
    the caller."""

    def __init__(self, registry: Registry, ops: LpOps, worker: BlockingWorker,
                 timings: PrinterTimings | None = None) -> None:
        self.registry = registry
        self.ops = ops
        self.worker = worker
        self.timings = timings or PrinterTimings()
        self.present: dict[str, UsbPrinter] = {}
        self.assignment: dict[str, str] = {}  # devpath -> section
        self._reported: dict[str, Attachment] = {}  # section -> what the registry was told
        self._unbound: list[dict[str, str]] = []
        self._told_unconfigured: set[str] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self._config = registry.config
        self._reassign_scheduled = False
        self._stopped = False
        registry.subscribe(self._registry_changed)
        registry.subscribe_firmware(self.firmware_changed)

    # --- discovery input -------------------------------------------------------------------

    def add(self, found: FoundPrinter) -> None:
        existing = self.present.get(found.devpath)
        if existing is not None:
            if existing.node == found.node and existing.identity == found.identity:
                return  # seen by coldplug and by the monitor
            self.remove(found.devpath)
        printer = UsbPrinter(found.devpath, found.node, found.identity, self, self.ops,
                             self.worker, self.timings)
        self.present[found.devpath] = printer
        log.debug("lp device %s appeared (%s)", found.node, found.identity.describe())
        printer.start()

    def remove(self, devpath: str) -> None:
        printer = self.present.pop(devpath, None)
        if printer is None:
            return
        section = self.assignment.pop(devpath, None)
        log.info("USB printer %s (%s) removed from %s", printer.name, printer.identity.describe(),
                 printer.node)
        self._told_unconfigured.discard(devpath)
        task = printer.stop()
        if task is not None:
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        if section is not None:
            self._report(section, None)
        self._publish_unserved()

    def sync(self, found: Iterable[FoundPrinter]) -> None:
        """A full rescan (start-up, netlink overflow, SIGHUP): converge on exactly `found`."""
        found = list(found)
        wanted = {f.devpath for f in found}
        for devpath in [d for d in self.present if d not in wanted]:
            self.remove(devpath)
        for item in found:
            self.add(item)

    def set_unbound(self, entries: Iterable[Mapping[str, str]]) -> None:
        """Printers with no lp device at all (from the sysfs/libusb scan)."""
        self._unbound = [dict(e) for e in entries]
        self._publish_unserved()

    def firmware_changed(self) -> None:
        for printer in self.present.values():
            printer.firmware_changed()

    async def stop(self) -> None:
        """The daemon is stopping: end the printers' tasks but leave their attachments, so the
        registry's shutdown accounts running jobs as aborted, not as unplugged."""
        self._stopped = True
        for printer in self.present.values():
            task = printer.stop()
            if task is not None:
                self._stopping.add(task)
        self.present.clear()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # --- PrinterHost --------------------------------------------------------------------------

    def settings_for(self, printer: UsbPrinter) -> PrinterSettings | None:
        section = self.assignment.get(printer.devpath)
        return self.registry.config.printer(section) if section else None

    def firmware_dir(self) -> Path:
        return Path(self.registry.config.settings.firmware_dir)

    def server_for(self, printer: UsbPrinter) -> PrintServer | None:
        section = self.assignment.get(printer.devpath)
        entry = self.registry.servers.get(section) if section else None
        if entry is None or entry[0].device_path != printer.node:
            return None
        return entry[1]

    def identified(self, printer: UsbPrinter) -> None:
        self.reassign()

    def changed(self, printer: UsbPrinter) -> None:
        section = self.assignment.get(printer.devpath)
        if section is not None and self.present.get(printer.devpath) is printer:
            self._report(section, printer.attachment())
        elif section is None:
            self._publish_unserved()

    # --- decisions -------------------------------------------------------------------------

    def reassign(self) -> None:
        """Match every identified printer to its section, adding sections for new ones."""
        if self._stopped:
            return
        candidates = [Candidate(devpath, p.identity, p.node)
                      for devpath, p in self.present.items() if p.identified]
        assignment = assign_sections(candidates, self.registry.config, self.assignment)
        if self._autoadd(c for c in candidates if c.key not in assignment):
            assignment = assign_sections(candidates, self.registry.config, self.assignment)
        self._apply(assignment)

    def _autoadd(self, unassigned: Iterable[Candidate]) -> bool:
        """A section (one UCI write) for each printer seen for the first time."""
        if not self.registry.config.settings.autoadd:
            return False
        added = False
        for candidate in unassigned:
            printer = self.present[candidate.key]
            if printer.autoadd_tried:  # first sight only: never write twice for one plug-in
                continue
            printer.autoadd_tried = True
            model = firmware_model(printer.identity.usb_id)
            label = unique_label(printer.label,
                                 (p.display_name for p in self.registry.config.printers))
            values = new_printer_values(printer.identity, host_based=model is not None,
                                        firmware=model.blob if model else "")
            try:
                self.registry.add_printer(label, values)
            except (UciError, OSError) as err:
                log.error("new USB printer %s (%s) could not be saved: %s", label,
                          printer.identity.describe(), err)
                continue
            added = True
        return added

    def _apply(self, assignment: dict[str, str]) -> None:
        previous, self.assignment = self.assignment, assignment
        for section in set(previous.values()) - set(assignment.values()):
            self._report(section, None)
        for devpath, section in assignment.items():
            printer = self.present[devpath]
            if previous.get(devpath) != section:
                settings = self.registry.config.printer(section)
                port = f" on port {settings.port}" if settings else ""
                log.info("%s at %s is printer '%s'%s", printer.label, printer.node, section,
                         port)
                self._told_unconfigured.discard(devpath)
                printer.wake()
            self._report(section, printer.attachment())
        self._publish_unserved()

    def _report(self, section: str, attachment: Attachment | None) -> None:
        if self._reported.get(section) == attachment:
            return
        if attachment is None:
            self._reported.pop(section, None)
        else:
            self._reported[section] = attachment
        self.registry.set_usb_attachment(section, attachment)

    def _unconfigured(self) -> list[dict[str, str]]:
        autoadd = self.registry.config.settings.autoadd
        entries = []
        for devpath, printer in self.present.items():
            if not printer.identified or devpath in self.assignment:
                continue
            reason = ("not configured (autoadd is off): add a printer section for it"
                      if not autoadd else "not configured: its section could not be saved")
            if devpath not in self._told_unconfigured:
                self._told_unconfigured.add(devpath)
                log.warning("USB printer %s (%s) at %s is not served: %s", printer.label,
                            printer.identity.describe(), printer.node, reason)
            entries.append({**printer.identity.as_dict(), "name": printer.label,
                            "device": printer.node, "device_id": printer.device_id,
                            "reason": reason})
        return entries

    def _publish_unserved(self) -> None:
        if not self._stopped:
            self.registry.set_unserved_usb(self._unconfigured() + self._unbound)

    def _registry_changed(self) -> None:
        """The config was reloaded (owner's edit, SIGHUP, autoadd): match again, soon."""
        if self._stopped or self.registry.config is self._config:
            return
        self._config = self.registry.config
        if not self._reassign_scheduled:
            self._reassign_scheduled = True
            asyncio.get_running_loop().call_soon(self._reassign_after_change)

    def _reassign_after_change(self) -> None:
        self._reassign_scheduled = False
        self.reassign()
        for printer in self.present.values():
            printer.wake()
