"""The USB service: discovery, hotplug, identity, status and firmware, plugged into the core.

`create_service` returns None (after one log line) on machines where it cannot work — no
pyudev/libudev, or no USB in the kernel at all — so a development machine still runs the daemon
with its virtual printers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from usbprintd.core import Core

if TYPE_CHECKING:  # imported in start(): a machine without USB never loads them
    from usbprintd.usb.hotplug import UdevWatcher
    from usbprintd.usb.libusb_scan import LibusbScanner
    from usbprintd.usb.manager import UsbPrinters
    from usbprintd.usb.worker import BlockingWorker

log = logging.getLogger(__name__)

SYS_USB = Path("/sys/bus/usb")
SYS_USBMISC = Path("/sys/class/usbmisc")
UNBOUND_SCAN_DELAY = 1.5  # after a usb event, give usblp time to bind before calling it unbound


class UsbService:
    name = "usb"

    def __init__(self) -> None:
        self.printers: UsbPrinters | None = None
        self.watcher: UdevWatcher | None = None
        self.scanner: LibusbScanner | None = None
        self.worker: BlockingWorker | None = None
        self._scan_timer: asyncio.TimerHandle | None = None
        self._scan_task: asyncio.Task[None] | None = None

    def start(self, core: Core) -> None:
        from usbprintd.usb.hotplug import UdevWatcher
        from usbprintd.usb.libusb_scan import LibusbScanner
        from usbprintd.usb.lp import UsblpOps
        from usbprintd.usb.manager import UsbPrinters
        from usbprintd.usb.worker import BlockingWorker

        self.worker = BlockingWorker()  # its thread starts with the first query
        self.scanner = LibusbScanner()
        self.printers = UsbPrinters(core.registry, UsblpOps(), self.worker)
        self.watcher = UdevWatcher(
            on_add=self.printers.add,
            on_remove=self.printers.remove,
            on_usb_change=self._schedule_unbound_scan,
            on_overflow=self.rescan,
        )
        self.watcher.start(core.loop)
        self.rescan()

    def rescan(self) -> None:
        """Converge on the lp devices present now, and look for printers without one."""
        if self.printers is None or self.watcher is None:
            return
        self.printers.sync(self.watcher.scan())
        self._schedule_unbound_scan(delay=0)

    def reload(self) -> None:
        """SIGHUP: a full rescan (the config and firmware blobs reach us through the registry)."""
        self.rescan()

    async def stop(self) -> None:
        if self._scan_timer is not None:
            self._scan_timer.cancel()
        if self._scan_task is not None:
            self._scan_task.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        if self.printers is not None:
            await self.printers.stop()
        if self.worker is not None:
            self.worker.stop()

    def _schedule_unbound_scan(self, delay: float = UNBOUND_SCAN_DELAY) -> None:
        if self._scan_timer is not None:
            self._scan_timer.cancel()
        self._scan_timer = asyncio.get_running_loop().call_later(delay, self._scan_unbound)

    def _scan_unbound(self) -> None:
        self._scan_timer = None
        if self._scan_task is not None and not self._scan_task.done():
            self._schedule_unbound_scan()  # one at a time: look again once this one is done
            return
        self._scan_task = asyncio.get_running_loop().create_task(self._scan_unbound_off_loop())

    async def _scan_unbound_off_loop(self) -> None:
        """libusb asks each unbound printer for its device ID, a control transfer that may
        take a second: on the worker thread, never on the loop."""
        if self.printers is None or self.scanner is None or self.worker is None:
            return
        try:
            entries = await self.worker.call(self.scanner.scan)
        except Exception:  # a bug in the scan must not end USB handling
            log.exception("looking for printers without a usblp device")
            return
        self.printers.set_unbound(entries)


def create_service(core: Core) -> UsbService | None:
    if not SYS_USB.exists() and not SYS_USBMISC.exists():
        log.info("no USB support in this kernel (%s missing): USB printers are off", SYS_USB)
        return None
    try:
        import pyudev

        pyudev.Context()  # loads libudev
    except (ImportError, OSError) as err:
        log.warning("pyudev/libudev not available (%s): USB printers are off", err)
        return None
    return UsbService()
