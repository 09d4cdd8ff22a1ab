"""The USB service switches itself off, with one log line, where it cannot work."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

from usbprintd.usb import service
from usbprintd.usb.worker import BlockingWorker


def test_no_usb_in_the_kernel_means_no_service(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(service, "SYS_USB", tmp_path / "bus" / "usb")
    monkeypatch.setattr(service, "SYS_USBMISC", tmp_path / "class" / "usbmisc")
    with caplog.at_level(logging.INFO, "usbprintd"):
        assert service.create_service(core=None) is None
    assert len(caplog.records) == 1 and "USB printers are off" in caplog.text


def test_missing_pyudev_means_no_service(tmp_path: Path, monkeypatch, caplog):
    (tmp_path / "bus" / "usb").mkdir(parents=True)
    monkeypatch.setattr(service, "SYS_USB", tmp_path / "bus" / "usb")
    monkeypatch.setitem(sys.modules, "pyudev", None)
    with caplog.at_level(logging.INFO, "usbprintd"):
        assert service.create_service(core=None) is None
    assert len(caplog.records) == 1 and "pyudev/libudev not available" in caplog.text


def test_usb_bus_without_the_usblp_class_still_runs_to_explain_unserved_printers(
        tmp_path: Path, monkeypatch):
    (tmp_path / "bus" / "usb").mkdir(parents=True)
    monkeypatch.setattr(service, "SYS_USB", tmp_path / "bus" / "usb")
    monkeypatch.setattr(service, "SYS_USBMISC", tmp_path / "class" / "usbmisc")
    assert isinstance(service.create_service(core=None), service.UsbService)


class SlowScanner:
    """A libusb scan whose control transfer takes its full timeout."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def scan(self) -> list[dict[str, str]]:
        self.threads.append(threading.current_thread().name)
        time.sleep(0.5)
        return [{"usb_id": "03f0:2d2a", "reason": "IPP-over-USB only"}]


class UnboundSink:
    def __init__(self) -> None:
        self.entries: list[list[dict[str, str]]] = []

    def set_unbound(self, entries) -> None:
        self.entries.append(list(entries))

    async def stop(self) -> None:
        pass


def test_unbound_scan_runs_on_the_worker_and_the_loop_keeps_going():
    usb = service.UsbService()
    usb.scanner, usb.printers, usb.worker = SlowScanner(), UnboundSink(), BlockingWorker()

    async def scenario():
        loop = asyncio.get_running_loop()
        ticks: list[float] = []
        usb._schedule_unbound_scan(delay=0)
        await asyncio.sleep(0.01)
        usb._schedule_unbound_scan(delay=0)  # a second usb event while the scan runs
        while usb.printers.entries == [] and len(ticks) < 200:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)
        await usb.stop()
        return ticks

    ticks = asyncio.run(scenario())
    assert usb.scanner.threads == ["usb-calls"]  # one scan at a time, off the loop
    assert usb.printers.entries == [[{"usb_id": "03f0:2d2a", "reason": "IPP-over-USB only"}]]
    assert len(ticks) >= 25 and max(b - a for a, b in pairwise(ticks)) < 0.2
