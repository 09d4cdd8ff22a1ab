"""The pyudev adapter: lp devices coming and going, delivered on the event loop.

Works on OpenWrt (libudev-zero, no udevd: kernel uevents, netlink group 1) and on desktops with
systemd-udevd (udev's rebroadcast after its rules ran, so /dev nodes exist with their final
permissions). Filters are subsystem-only (libudev-zero drops every event without DEVTYPE once a
devtype filter exists); `poll(timeout=0)` may return None after a filtered message, which just
ends one drain; a netlink overflow (ENOBUFS) means events were lost, so the owner rescans.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from usbprintd.usb.manager import FoundPrinter
from usbprintd.usb.sysfs import NotAUsbPrinter, read_identity

log = logging.getLogger(__name__)

UDEV_CONTROL = "/run/udev/control"  # present while udevd (systemd or eudev) runs


def event_source(udev_control: str = UDEV_CONTROL) -> str:
    """'udev' when a udev daemon rebroadcasts events, else the kernel's own."""
    return "udev" if os.path.exists(udev_control) else "kernel"


def is_lp_device(subsystem: str | None, sys_name: str) -> bool:
    return subsystem == "usbmisc" and sys_name.startswith("lp")


def found_printer(device: Any) -> FoundPrinter | None:
    """A pyudev Device of an lp node as plain data; None if it vanished while being read."""
    try:
        identity = read_identity(Path(device.sys_path))
    except (NotAUsbPrinter, OSError) as err:
        log.debug("%s: not readable: %s", device.sys_path, err)
        return None
    node = device.device_node or f"/dev/usb/{device.sys_name}"
    return FoundPrinter(devpath=device.device_path, node=node, identity=identity)


def _describe(device: Any) -> str:
    """An event for the log, even one whose fields pyudev cannot decode (it raises again)."""
    try:
        return f"{device.action} {device.device_path}"
    except Exception:
        return "with an undecodable field"


class UdevWatcher:
    """Calls `on_add(FoundPrinter)`, `on_remove(devpath)`, `on_usb_change()` (any usb device or
    interface event) and `on_overflow()` (events were lost) from the event loop."""

    def __init__(
        self,
        on_add: Callable[[FoundPrinter], None],
        on_remove: Callable[[str], None],
        on_usb_change: Callable[[], None],
        on_overflow: Callable[[], None],
    ) -> None:
        import pyudev  # imported here: the daemon runs (without USB) when it is missing

        self._pyudev = pyudev
        self.on_add = on_add
        self.on_remove = on_remove
        self.on_usb_change = on_usb_change
        self.on_overflow = on_overflow
        self.context = pyudev.Context()
        self.source = event_source()
        self.monitor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening before the caller's coldplug `scan()`, so nothing falls between."""
        self.monitor = self._pyudev.Monitor.from_netlink(self.context, source=self.source)
        self.monitor.filter_by("usbmisc")
        self.monitor.filter_by("usb")
        self.monitor.start()
        self._loop = loop
        loop.add_reader(self.monitor.fileno(), self._drain)
        log.info("watching USB printers (%s events)", self.source)

    def stop(self) -> None:
        if self._loop is not None and self.monitor is not None:
            self._loop.remove_reader(self.monitor.fileno())
            self._loop = None

    def scan(self) -> list[FoundPrinter]:
        """Every lp device present now (coldplug)."""
        found = []
        for device in self.context.list_devices(subsystem="usbmisc"):
            if is_lp_device(device.subsystem, device.sys_name):
                item = found_printer(device)
                if item is not None:
                    found.append(item)
        return found

    def _drain(self) -> None:
        while True:
            try:
                device = self.monitor.poll(timeout=0)
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    log.warning("USB events were lost (netlink buffer overrun); rescanning")
                    self.on_overflow()
                    continue
                log.error("USB event monitor: %s", err)
                return
            if device is None:
                return  # nothing left, or a message the filters dropped (libudev-zero)
            try:
                self._dispatch(device)
            except Exception:  # one odd event must not stop hotplug
                log.exception("handling USB event %s failed; it is skipped", _describe(device))

    def _dispatch(self, device: Any) -> None:
        action, subsystem = device.action, device.subsystem
        log.debug("uevent %s %s %s", action, subsystem, device.device_path)
        if is_lp_device(subsystem, device.sys_name):
            if action == "add":
                item = found_printer(device)
                if item is not None:
                    self.on_add(item)
            elif action == "remove":
                self.on_remove(device.device_path)
        elif subsystem == "usb":
            self.on_usb_change()
