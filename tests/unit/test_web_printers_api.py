"""What /api/printers tells about printers beyond their sections: USB printers that are
plugged in but not served, and the model of each printer, also while it is unplugged.
The daemon's web app over a real registry, in this process (see web_inprocess.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_inprocess import InProcessWeb

from usbprintd.web.app import printer_model

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


def test_absent_printers_show_the_model_the_config_remembers(web):
    by_section = {p["section"]: p for p in printers(web)["printers"]}
    assert by_section["a"]["present"] is False
    assert by_section["a"]["model"] == "HP LaserJet 1018"
    assert by_section["b"]["model"] == "Brother HL-L2350DW series"
    single = web.request("GET", b"/api/printers/a").json()["printer"]
    assert single["model"] == "HP LaserJet 1018"


def snapshot(usb: dict[str, str], **settings: str) -> dict:
    base = {"name": "", "usb_id": "", "device": ""}
    return {"usb": usb, "settings": {**base, **settings}}


@pytest.mark.parametrize("printer, model", [
    # plugged in: what the printer says about itself
    (snapshot({"manufacturer": "Hewlett-Packard", "product": "HP LaserJet 1018"},
              name="Office"), "HP LaserJet 1018"),
    (snapshot({"manufacturer": "Brother", "product": "HL-L2350DW series"}),
     "Brother HL-L2350DW series"),
    (snapshot({"manufacturer": "Samsung", "product": ""}), "Samsung"),
    (snapshot({"manufacturer": "HP", "product": "HP LaserJet",
               "device_id": "MFG:Hewlett-Packard;MDL:HP LaserJet P1005;"}),
     "HP LaserJet P1005"),
    # unplugged: what the config remembers (autoadd saves the make and model as the name)
    (snapshot({}, name="HP LaserJet 1020", usb_id="03f0:2b17"), "HP LaserJet 1020"),
    (snapshot({}, usb_id="03f0:2b17"), "USB printer 03f0:2b17"),
    # known only by its device path: nothing to tell
    (snapshot({}, name="spool", device="/tmp/spool"), ""),
])
def test_printer_model(printer, model):
    assert printer_model(printer) == model
