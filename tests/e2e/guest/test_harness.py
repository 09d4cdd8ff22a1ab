"""Self-tests of the harness on the guest's real kernel: what a simulated printer looks like
from the computer's side (usblp, sysfs, uevents) is what the daemon will see."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pyudev
from daemon_process import global_section, printer_section, wait_for
from printer_gadget import (
    Printer,
    TooManyPrinters,
    generic_printer,
    hp_laserjet_1018,
    tail_may_stall,
)
from printer_gadget.usblp import (
    device_id,
    open_lp,
    port_status,
    read_back_channel,
    vid_pid,
    wait_writable,
    write_all,
)


@contextmanager
def lp(printer: Printer) -> Iterator[int]:
    fd = open_lp(printer.lp_path or printer.wait_lp())
    try:
        yield fd
    finally:
        os.close(fd)


def sysfs_device_id(printer: Printer) -> str:
    node = printer.lp_path
    assert node is not None
    return Path("/sys/class/usbmisc", node.name, "device", "ieee1284_id").read_text()


def test_plug_creates_lp_node_with_the_gadget_descriptors_and_unplug_removes_it(printers):
    printer = printers.new(generic_printer(serial="SERIAL-PLUG-1"))
    assert printer.lp_path is None
    node = printer.plug()
    assert node is not None and node.is_char_device() and node.parent == Path("/dev/usb")
    usb_device = printer.usb_device
    assert usb_device is not None
    assert (usb_device / "idVendor").read_text().strip() == "0525"
    assert (usb_device / "idProduct").read_text().strip() == "a4a8"
    assert (usb_device / "serial").read_text().strip() == "SERIAL-PLUG-1"
    assert (usb_device / "product").read_text().strip() == "E2E Test Printer"
    printer.unplug()
    assert not node.exists()
    assert printer.usb_device is None


def test_printer_without_serial_has_no_serial_attribute(printers):
    printer = printers.new(generic_printer(serial=None), plug=True)
    usb_device = printer.usb_device
    assert usb_device is not None
    assert not (usb_device / "serial").exists()


@pytest.mark.parametrize("size", [1 << 20, 100_003, 1])
def test_bytes_written_to_lp_arrive_byte_identical_at_the_gadget(printer, size):
    assert not tail_may_stall(size)
    payload = os.urandom(size)
    with lp(printer) as fd:
        started = time.monotonic()
        write_all(fd, payload, timeout=30)
        received = printer.wait_received(size, timeout=30)
        elapsed = time.monotonic() - started
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
    print(f"{size} bytes lp -> gadget in {elapsed:.3f} s")


def test_back_channel_bytes_come_back_through_lp(printer):
    reply = b"@PJL INFO STATUS\r\nCODE=10001\r\nDISPLAY=\"Ready\"\r\nONLINE=TRUE\r\n\x0c"
    large = os.urandom(64 * 1024 + 7)
    with lp(printer) as fd:
        printer.answer(reply)
        assert read_back_channel(fd, len(reply), timeout=10) == reply
        printer.answer(large)
        assert read_back_channel(fd, len(large), timeout=20) == large
    assert printer.unanswered == 0


def test_device_id_ioctl_and_sysfs_return_the_exact_pnp_string(printer):
    """Exact equality also proves the P1 padding workaround still matches the kernel."""
    with lp(printer) as fd:
        assert device_id(fd) == printer.model.pnp_string
        assert vid_pid(fd) == (0x0525, 0xA4A8)
    assert sysfs_device_id(printer).rstrip("\n") == printer.model.pnp_string


def test_port_status_shows_paper_out_and_clears(printer):
    with lp(printer) as fd:
        assert port_status(fd) == 0x18
        printer.paper_out()
        assert port_status(fd) == 0x30
        assert printer.status == 0x30
        printer.paper_out(False)
        assert port_status(fd) == 0x18


def test_paper_out_set_before_plugging_is_reported_from_the_start(printers):
    printer = printers.new()
    printer.paper_out()
    printer.plug()
    with lp(printer) as fd:
        assert port_status(fd) == 0x30
        write_all(fd, b"waits for paper")
        time.sleep(0.5)
        assert printer.received() == b""
        printer.paper_out(False)
        assert printer.wait_received(15) == b"waits for paper"


def test_paper_out_printer_stops_taking_data_until_paper_is_back(printers):
    printer = printers.new(q_len=2, plug=True)  # the gadget buffers only 2 x 8 KiB (P6)
    payload = os.urandom(256 * 1024)
    printer.paper_out()
    with lp(printer) as fd:
        with pytest.raises(TimeoutError):
            write_all(fd, payload, timeout=2)
        assert len(printer.received()) <= 2 * 8192
        stalled_at = len(printer.received())
        printer.paper_out(False)
        printer.wait_received(stalled_at + 8192, timeout=10)
    # The rest of the write was cut off by the timeout: only check what arrived is a prefix.
    received = printer.received()
    assert payload.startswith(received)


def test_two_printers_with_same_vid_pid_and_different_serials_are_two_lp_devices(printers):
    first = printers.new(generic_printer(serial="TWIN-A"), plug=True)
    second = printers.new(generic_printer(serial="TWIN-B"), plug=True)
    assert first.lp_path != second.lp_path
    assert first.udc != second.udc
    assert first.usb_device is not None and second.usb_device is not None
    serials = {first.lp_path: (first.usb_device / "serial").read_text().strip(),
               second.lp_path: (second.usb_device / "serial").read_text().strip()}
    assert serials == {first.lp_path: "TWIN-A", second.lp_path: "TWIN-B"}
    with lp(first) as fd_first, lp(second) as fd_second:
        write_all(fd_first, b"job for A\n")
        write_all(fd_second, b"job for B\n")
        assert first.wait_received(10) == b"job for A\n"
        assert second.wait_received(10) == b"job for B\n"
        assert vid_pid(fd_first) == vid_pid(fd_second)


def test_four_printers_fit_at_once_and_a_fifth_is_refused_clearly(printers):
    plugged = [printers.new(generic_printer(serial=f"QUAD-{number}"), plug=True)
               for number in range(4)]
    assert len({printer.lp_path for printer in plugged}) == 4
    fifth = printers.new(generic_printer(serial="QUAD-X"))
    with pytest.raises(TooManyPrinters):
        fifth.plug()
    assert not fifth.gadget.exists
    plugged[0].remove()
    assert fifth.plug() is not None


def test_pnp_string_changed_live_is_seen_by_the_ioctl_while_sysfs_stays_cached(printer):
    """P7: usblp caches ieee1284_id at probe and refreshes it only on the ioctl."""
    changed = printer.model.pnp_string + "VSTATUS:$PRDY;"
    printer.set_pnp_string(changed)
    assert printer.pnp_string == changed
    assert sysfs_device_id(printer).rstrip("\n") == printer.model.pnp_string
    with lp(printer) as fd:
        assert device_id(fd) == changed
    assert sysfs_device_id(printer).rstrip("\n") == changed


def test_firmware_printer_adds_fwver_after_receiving_the_blob(printers):
    model = hp_laserjet_1018(serial="FW-1", firmware_size=40_001, fwver="20041006")
    printer = printers.new(model, plug=True)
    blob, job = os.urandom(40_001), b"\x1b%-12345X@PJL JOB\r\n" + os.urandom(5000)
    with lp(printer) as fd:
        assert "FWVER" not in device_id(fd)
        assert vid_pid(fd) == (0x03F0, 0x4117)
        write_all(fd, blob)
        wait_for(lambda: printer.firmware_loaded, timeout=10)
        assert device_id(fd) == model.pnp_string + "FWVER:20041006;"
        write_all(fd, job)
        assert printer.wait_received(len(job), after_firmware=True) == job
    assert printer.received() == blob + job


def test_power_cycle_re_enumerates_and_forgets_the_firmware(printers):
    model = hp_laserjet_1018(serial="FW-2", firmware_size=20_001)
    printer = printers.new(model, plug=True)
    with lp(printer) as fd:
        write_all(fd, bytes(20_001))
        wait_for(lambda: printer.firmware_loaded, timeout=10)
    udc = printer.udc
    node = printer.power_cycle()
    assert printer.udc == udc and node is not None
    assert not printer.firmware_loaded
    with lp(printer) as fd:
        assert "FWVER" not in device_id(fd)


def test_unplug_while_the_computer_holds_lp_open_fails_its_io(printer):
    fd = open_lp(printer.wait_lp())
    try:
        write_all(fd, b"first part\n")
        printer.wait_received(11)
        printer.unplug()
        with pytest.raises(OSError) as raised:
            wait_writable(fd, 2)
            os.write(fd, b"second part\n")
        assert raised.value.errno in (errno.ENODEV, errno.EIO, errno.ENXIO)
    finally:
        os.close(fd)


def test_kernel_uevents_report_lp_add_and_remove(printers):
    printer = printers.new()
    monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
    monitor.filter_by("usbmisc")
    monitor.start()
    printer.plug()
    added = monitor.poll(timeout=10)
    assert added is not None and added.action == "add"
    assert printer.lp_path is not None and added.device_node == str(printer.lp_path)
    usb_device = added.find_parent("usb", "usb_device")
    assert usb_device.attributes.asstring("serial") == printer.model.identity.serial
    printer.unplug()
    removed = monitor.poll(timeout=10)
    assert removed is not None and (removed.action, removed.sys_name) == ("remove", added.sys_name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_daemon_runs_in_the_guest_and_prints_to_a_virtual_printer(usbprintd, tmp_path):
    """The process model the daemon scenarios use: the project's venv python, loopback."""
    spool, port = tmp_path / "spool", free_port()
    spool.mkdir()
    daemon = usbprintd(global_section() + printer_section("virtual", spool, port))
    wait_for(lambda: _accepts(port), timeout=20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"hello from the guest\n")
    # The readiness probe above may have left an empty job; look for the real one.
    wait_for(lambda: [path for path in spool.iterdir()
                      if path.read_bytes() == b"hello from the guest\n"], timeout=20)
    assert daemon.alive


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
