"""Printers without a usblp device: listed from sysfs, named through libusb when it is there,
and the daemon unbothered when pyusb or libusb is missing."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_usb_sysfs import make_device, make_interface

from usbprintd.usb.libusb_scan import LibusbScanner

DEVICE_ID = "MFG:HP;MDL:LaserJet Pro M404;CMD:PCL,PDF,URF;CLS:PRINTER;"


def ipp_usb_printer(root: Path) -> None:
    (root / "module" / "usblp").mkdir(parents=True)
    device = make_device(root, "1-2", "03f0", "2d2a", "IPP1", manufacturer="HP",
                         product="LaserJet Pro")
    make_interface(root, device, 0, 4)


class FakeUsbDevice:
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests = []

    def get_active_configuration(self):
        return SimpleNamespace(bConfigurationValue=1)

    def ctrl_transfer(self, request_type, request, value, index, length, timeout):
        self.requests.append((request_type, request, value, index, length))
        return self.reply


def fake_usb_core(device):
    return SimpleNamespace(find=lambda **match: device if match else [device])


def test_unbound_printer_is_named_from_its_1284_id_read_through_libusb(tmp_path, caplog):
    ipp_usb_printer(tmp_path)
    body = DEVICE_ID.encode()
    device = FakeUsbDevice((len(body) + 2).to_bytes(2, "big") + body)
    scanner = LibusbScanner(tmp_path)
    scanner._usb_core = fake_usb_core(device)
    with caplog.at_level(logging.INFO, "usbprintd"):
        [entry] = scanner.scan()
    assert entry["name"] == "HP LaserJet Pro M404"
    assert entry["device_id"] == DEVICE_ID
    assert entry["protocols"] == "7/1/4" and "IPP-over-USB only" in entry["reason"]
    # GET_DEVICE_ID: class request to interface 0, alternate 0, config index 0
    assert device.requests == [(0xA1, 0, 0, 0, 1024)]
    assert "is not served: IPP-over-USB only" in caplog.text
    caplog.clear()
    scanner.scan()
    assert "is not served" not in caplog.text  # told once while it stays


def test_without_pyusb_the_list_comes_from_sysfs_and_that_is_logged_once(tmp_path, caplog,
                                                                       monkeypatch):
    ipp_usb_printer(tmp_path)
    monkeypatch.setitem(sys.modules, "usb", None)
    monkeypatch.setitem(sys.modules, "usb.core", None)
    scanner = LibusbScanner(tmp_path)
    with caplog.at_level(logging.INFO, "usbprintd"):
        [entry] = scanner.scan()
        scanner.scan()
    assert entry["name"] == "HP LaserJet Pro" and entry["device_id"] == ""
    assert caplog.text.count("pyusb/libusb not available") == 1


def test_interface_held_by_another_program_is_not_touched(tmp_path):
    (tmp_path / "module" / "usblp").mkdir(parents=True)
    device = make_device(tmp_path, "1-1", "03f0", "4117", "S")
    make_interface(tmp_path, device, 0, 2, driver="usbfs")
    usb_device = FakeUsbDevice(b"")
    scanner = LibusbScanner(tmp_path)
    scanner._usb_core = fake_usb_core(usb_device)
    [entry] = scanner.scan()
    assert usb_device.requests == [] and "'usbfs'" in entry["reason"]


@pytest.mark.parametrize("error", [OSError("stall"), ValueError("bad")])
def test_a_failing_request_leaves_the_id_empty(tmp_path, error):
    ipp_usb_printer(tmp_path)

    class Failing(FakeUsbDevice):
        def ctrl_transfer(self, *args):
            raise error

    scanner = LibusbScanner(tmp_path)
    scanner._usb_core = fake_usb_core(Failing(b""))
    [entry] = scanner.scan()
    assert entry["device_id"] == ""
