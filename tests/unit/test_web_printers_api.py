"""What /api/printers tells about printers beyond their sections: USB printers that are
plugged in but not served, and the model of each printer, also while it is unplugged.
The daemon's web app over a real registry, in this process (see web_inprocess.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_inprocess import InProcessWeb

IPP_ONLY = {
    "vid": "03f0", "pid": "c511", "usb_id": "03f0:c511", "serial": "VNB3K12345",
    "usb_path": "1-1", "manufacturer": "HP", "product": "LaserJet Pro M404",
    "protocol": "", "name": "HP LaserJet Pro M404", "device": "", "device_id": "",
    "protocols": "7/1/4", "reason": "IPP-over-USB only: the kernel has no raw printer port",
}
NOT_CONFIGURED = {
    **IPP_ONLY, "usb_id": "04f9:0042", "serial": "E7", "name": "Brother HL-L2350DW",
    "device": "/dev/usb/lp1", "protocols": "7/1/2",
    "reason": "not configured (autoadd is off): add a printer section for it",
}


@pytest.fixture
def web(tmp_path: Path) -> InProcessWeb:
    web = InProcessWeb(tmp_path)
    web.reset()
    return web


def printers(web: InProcessWeb) -> dict:
    reply = web.request("GET", b"/api/printers")
    assert reply.status == 200
    return reply.json()


def test_unserved_usb_printers_are_listed_with_their_reason(web):
    assert printers(web)["unserved_usb"] == []
    web.registry.set_unserved_usb([IPP_ONLY, NOT_CONFIGURED])
    listed = printers(web)["unserved_usb"]
    assert listed == [IPP_ONLY, NOT_CONFIGURED]
    web.registry.set_unserved_usb([NOT_CONFIGURED])  # unplugged, or bound after all
    assert [p["usb_id"] for p in printers(web)["unserved_usb"]] == ["04f9:0042"]

