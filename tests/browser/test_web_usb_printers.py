"""USB printers on the status page, in a real browser: those plugged in but not served.

The daemon process the other browser tests run finds USB printers only through the kernel,
and this machine has no USB, so here the daemon's parts run in this process instead — its
registry with the config file, its core on an event-loop thread and its web service on a
free loopback port — and the test reports USB printers to the registry through the same
call the USB layer makes (`Registry.set_unserved_usb`).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon_process import free_port, global_section
from playwright.sync_api import expect
from web_helpers import PASSWORD, password_hash

from usbprintd.core import Core
from usbprintd.eventlog import EventLog
from usbprintd.registry import Registry
from usbprintd.uci import FileStore
from usbprintd.web.service import WebService

pytestmark = pytest.mark.browser

IPP_ONLY = {
    "vid": "03f0", "pid": "c511", "usb_id": "03f0:c511", "serial": "VNB3K12345",
    "usb_path": "1-1.2", "manufacturer": "HP", "product": "LaserJet Pro M404",
    "protocol": "", "name": "HP LaserJet Pro M404", "device": "", "device_id": "",
    "protocols": "7/1/4", "reason": "IPP-over-USB only: no raw printer interface",
}
NOT_CONFIGURED = {
    **IPP_ONLY, "usb_id": "04f9:0042", "serial": "", "usb_path": "1-1.3",
    "name": "Brother HL-L2350DW series", "device": "/dev/usb/lp1", "protocols": "7/1/2",
    "reason": "not configured (autoadd is off): add a printer section for it",
}
REMEMBERED = """config printer 'laserjet'
\toption name 'HP LaserJet 1020'
\toption usb_id '03f0:2b17'
\toption serial 'JL1234'
\toption port '9100'
\toption bind '127.0.0.1'
"""


@dataclass
class InProcessDaemon:
    """The daemon's registry, core and web service; the loop runs on its own thread."""

    core: Core
    service: WebService
    url: str

    def call(self, function: Any) -> Any:
        return self.core.call(function)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[InProcessDaemon]:
    web_port = free_port()
    config = tmp_path / "usbprintd.conf"
    config.write_text(global_section(web_listen="127.0.0.1", web_port=str(web_port),
                                     auth="password", password_hash=password_hash(),
                                     firmware_dir=str(tmp_path / "firmware"))
                      + REMEMBERED)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loop", daemon=True)
    thread.start()
    registry = Registry(FileStore(config))
    core = Core(loop, registry, EventLog())
    service = WebService(core)

    def start(registry: Registry) -> None:
        assert registry.reload()
        service.start(core)

    core.call(start)
    try:
        yield InProcessDaemon(core, service, f"http://127.0.0.1:{web_port}")
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
        asyncio.run_coroutine_threadsafe(registry.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def log_in(page, url: str) -> None:
    page.goto(url + "/login")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/")


def test_unserved_usb_printers_are_listed_live_with_the_reason(page, daemon, screenshot):
    log_in(page, daemon.url)
    section = page.locator("#unserved-section")
    expect(page.locator("#printers tr[data-section=laserjet]")).to_be_visible()
    expect(section).to_be_hidden()
    daemon.call(lambda registry: registry.set_unserved_usb([IPP_ONLY, NOT_CONFIGURED]))
    expect(section).to_be_visible()
    ipp = page.locator("#unserved tr[data-usb-id='03f0:c511']")
    expect(ipp).to_contain_text("HP LaserJet Pro M404")
    expect(ipp).to_contain_text("serial VNB3K12345")
    expect(ipp).to_contain_text("IPP-over-USB only")
    unconfigured = page.locator("#unserved tr[data-usb-id='04f9:0042']")
    expect(unconfigured).to_contain_text("/dev/usb/lp1")
    expect(unconfigured).to_contain_text("USB port 1-1.3")
    expect(unconfigured).to_contain_text(re.compile(r"autoadd is off"))
    screenshot(page, "status-unserved")
    daemon.call(lambda registry: registry.set_unserved_usb([NOT_CONFIGURED]))
    expect(ipp).to_have_count(0)
    daemon.call(lambda registry: registry.set_unserved_usb([]))
    expect(section).to_be_hidden()
    assert [p for p in page.problems if "Failed to load resource" not in p] == []


def test_an_absent_printer_shows_the_model_the_config_remembers(page, daemon):
    log_in(page, daemon.url)
    row = page.locator("#printers tr[data-section=laserjet]")
    expect(row.locator(".label")).to_have_text("absent")
    expect(row.locator("td").first.locator(".sub")).to_have_text("HP LaserJet 1020")
    row.get_by_role("link", name="Edit").click()
    expect(page.locator("[data-show=model]")).to_have_text("HP LaserJet 1020")
    assert [p for p in page.problems if "Failed to load resource" not in p] == []
