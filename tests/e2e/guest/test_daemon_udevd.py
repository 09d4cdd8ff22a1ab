"""The daemon on a desktop-like system where systemd-udevd runs: it must take udev's
rebroadcast events (source 'udev', chosen because /run/udev/control exists) and still read
identity from sysfs.

udevd comes from Debian's `udev` package, extracted (never installed) by the harness setup into
tests/e2e/.cache/udev-root: `apt-get download udev && dpkg-deb -x udev_*.deb
tests/e2e/.cache/udev-root`. `udevadm` runs as the daemon when started under the name
`systemd-udevd`. Without that tree the test is skipped.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
from daemon_process import free_port, global_section, port_accepts, send_with_nc, wait_for
from printer_gadget import generic_printer
from scenario import payload, refuses, usb_printer

UDEVADM = Path(__file__).resolve().parents[1] / ".cache" / "udev-root" / "bin" / "udevadm"
UDEV_CONTROL = Path("/run/udev/control")

pytestmark = pytest.mark.skipif(not UDEVADM.exists(), reason=f"no {UDEVADM} (see docstring)")


@pytest.fixture
def udevd(tmp_path: Path):
    log = (tmp_path / "udevd.log").open("wb")
    process = subprocess.Popen(["systemd-udevd"], executable=str(UDEVADM), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: UDEV_CONTROL.exists(), 10)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        # Later tests must see a system without udevd again (the daemon checks this file).
        with contextlib.suppress(FileNotFoundError):
            UDEV_CONTROL.unlink()


def test_daemon_follows_udev_events_when_udevd_runs(udevd, printers, usbprintd):
    port = free_port()
    daemon = usbprintd(global_section() + usb_printer("office", port, usb_id="0525:a4a8",
                                                      serial="UDEV-1"))
    daemon.wait_log(r"watching USB printers \(udev events\)", timeout=15)
    printer = printers.new(generic_printer("UDEV-1"), plug=True)
    wait_for(lambda: port_accepts(port), 10, 0.02)
    job = payload(12_001, seed=12)
    send_with_nc(port, job)
    assert printer.wait_received(len(job), timeout=20) == job
    printer.unplug()
    wait_for(lambda: refuses(port), 10)
    printer.plug()
    wait_for(lambda: port_accepts(port), 10)
    assert udevd.poll() is None
