"""usbprintd's usblp adapter (ioctl numbers computed for this CPU, status decoding, sysfs
identity) against the real kernel driver and a simulated printer."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from printer_gadget import generic_printer, hp_laserjet_1018

from usbprintd.usb.ieee1284 import parse_device_id
from usbprintd.usb.lp import UsblpOps, decode_status
from usbprintd.usb.sysfs import find_unbound_printers, read_identity


def test_device_id_vid_pid_and_status_through_the_daemons_ioctls(printers):
    printer = printers.new(generic_printer("IOCTL-1"), plug=True)
    ops = UsblpOps()
    fd = ops.open(str(printer.lp_path))
    try:
        assert ops.device_id(fd) == printer.pnp_string
        assert parse_device_id(ops.device_id(fd))["MDL"] == "E2E Test Printer"
        assert ops.vid_pid(fd) == (0x0525, 0xA4A8)
        assert decode_status(ops.status(fd)) == "online"
        printer.paper_out(True, hold=False)
        assert decode_status(ops.status(fd)) == "paper-out"
        printer.paper_out(False)
        assert decode_status(ops.status(fd)) == "online"
        with pytest.raises(OSError) as busy:
            ops.open(str(printer.lp_path))  # usblp: one opener at a time
        assert busy.value.errno == errno.EBUSY
    finally:
        os.close(fd)


def test_live_id_change_is_seen_by_the_ioctl_not_by_sysfs(printers):
    """Why firmware detection asks the printer: sysfs keeps the probe-time ID (P7)."""
    printer = printers.new(hp_laserjet_1018(), plug=True)
    sysfs_id = Path(f"/sys/class/usbmisc/{printer.lp_path.name}/device/ieee1284_id")
    printer.set_pnp_string(printer.pnp_string + "FWVER:20041006;")
    assert "FWVER" not in sysfs_id.read_text()
    ops = UsblpOps()
    fd = ops.open(str(printer.lp_path))
    try:
        assert parse_device_id(ops.device_id(fd))["FWVER"] == "20041006"
    finally:
        os.close(fd)


def test_identity_from_sysfs_with_and_without_serial(printers):
    with_serial = printers.new(generic_printer("SYSFS-1"), plug=True)
    without = printers.new(generic_printer(None), plug=True)
    for printer, serial in ((with_serial, "SYSFS-1"), (without, "")):
        identity = read_identity(Path(f"/sys/class/usbmisc/{printer.lp_path.name}"))
        assert (identity.usb_id, identity.serial) == ("0525:a4a8", serial)
        assert identity.usb_path == printer.usb_device.name
        assert identity.protocol == 2  # usb_f_printer is bidirectional (7/1/2)
        assert (identity.manufacturer, identity.product) == ("Linux", "E2E Test Printer")
    assert find_unbound_printers() == []
