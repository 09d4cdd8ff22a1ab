"""A machine without USB (this one: no /sys/bus/usb) still runs the daemon and its virtual
printers; the USB layer says once that it is off."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_process import (
    DaemonProcess,
    free_port,
    global_section,
    port_accepts,
    printer_section,
    send_with_nc,
    wait_for,
)


@pytest.mark.skipif(Path("/sys/bus/usb").exists(), reason="this machine has USB")
def test_daemon_without_usb_serves_virtual_printers(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    daemon = DaemonProcess(tmp_path, global_section(autoadd="1")
                           + printer_section("virtual", spool, port)).start()
    try:
        wait_for(lambda: port_accepts(port))
        send_with_nc(port, b"%!PS\nshowpage\n")
        wait_for(lambda: list(spool.glob("*.prn")))
        log = daemon.log()
        assert log.count("USB printers are off") == 1
        assert daemon.alive
    finally:
        daemon.stop()
