"""The USB service switches itself off, with one log line, where it cannot work."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from usbprintd.usb import service


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
