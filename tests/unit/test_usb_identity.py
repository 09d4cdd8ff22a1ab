"""Which configured section a USB printer is: identity, not device path."""

from __future__ import annotations

from usbprintd.config import parse_config
from usbprintd.uci import UciSection
from usbprintd.usb.identity import (
    Candidate,
    UsbIdentity,
    assign_sections,
    default_bidirectional,
    new_printer_values,
    unique_label,
)


def config(**sections: dict[str, str]):
    return parse_config([UciSection("printer", name, {"port": str(9100 + i), **opts})
                         for i, (name, opts) in enumerate(sections.items())])


def hp(serial: str = "", path: str = "1-1", key: str = "", node: str = "/dev/usb/lp0"):
    identity = UsbIdentity("03f0", "4117", serial=serial, usb_path=path)
    return Candidate(key or f"/devices/{path}/lp", identity, node)


def test_serial_identity_wins_over_a_loose_section():
    cfg = config(any_1018={"usb_id": "03f0:4117"},
                 mine={"usb_id": "03f0:4117", "serial": "AAA"})
    assert assign_sections([hp("AAA")], cfg, {}) == {hp("AAA").key: "mine"}


def test_printer_without_serial_is_matched_by_port_path():
    cfg = config(left={"usb_id": "03f0:4117", "usb_path": "1-1.1"},
                 right={"usb_id": "03f0:4117", "usb_path": "1-1.2"})
    a, b = hp(path="1-1.2"), hp(path="1-1.1")
    assert assign_sections([a, b], cfg, {}) == {a.key: "right", b.key: "left"}


def test_two_printers_of_one_model_keep_their_sections_whatever_the_plug_order():
    cfg = config(first={"usb_id": "03f0:4117", "serial": "AAA"},
                 second={"usb_id": "03f0:4117", "serial": "BBB"})
    a = hp("AAA", node="/dev/usb/lp0")
    b = hp("BBB", path="1-2", node="/dev/usb/lp1")
    assert assign_sections([a, b], cfg, {}) == {a.key: "first", b.key: "second"}
    assert assign_sections([b, a], cfg, {}) == {a.key: "first", b.key: "second"}


def test_loose_section_takes_the_first_unclaimed_printer_and_keeps_it():
    cfg = config(any_1018={"usb_id": "03f0:4117"})
    a, b = hp("AAA"), hp("BBB", path="1-2")
    assert assign_sections([a, b], cfg, {}) == {a.key: "any_1018"}
    # b arrived first this time, but a already had the section: no port stealing
    assert assign_sections([b, a], cfg, {a.key: "any_1018"}) == {a.key: "any_1018"}
    assert assign_sections([b, a], cfg, {}) == {b.key: "any_1018"}


def test_units_sharing_one_serial_keep_their_sections_by_port_whatever_the_plug_order():
    """Some models give every unit the same serial; autoadd stores the port path as well."""
    cfg = config(first={"usb_id": "03f0:4117", "serial": "SAME", "usb_path": "1-1"},
                 second={"usb_id": "03f0:4117", "serial": "SAME", "usb_path": "1-2"})
    a = hp("SAME", path="1-1", node="/dev/usb/lp0")
    b = hp("SAME", path="1-2", node="/dev/usb/lp1")
    assert assign_sections([a, b], cfg, {}) == {a.key: "first", b.key: "second"}
    assert assign_sections([b, a], cfg, {}) == {a.key: "first", b.key: "second"}


def test_a_unit_added_with_its_port_path_keeps_it_beside_an_older_serial_only_section():
    """A section written before port paths were stored (serial only) and one written after
    (serial and path) for two units sharing a serial: the path decides, whatever the order."""
    cfg = config(older={"usb_id": "03f0:4117", "serial": "SAME"},
                 newer={"usb_id": "03f0:4117", "serial": "SAME", "usb_path": "1-2"})
    x = hp("SAME", path="1-1", node="/dev/usb/lp0")
    y = hp("SAME", path="1-2", node="/dev/usb/lp1")
    assert assign_sections([x, y], cfg, {}) == {x.key: "older", y.key: "newer"}
    assert assign_sections([y, x], cfg, {}) == {x.key: "older", y.key: "newer"}


def test_a_printer_moved_to_another_port_is_still_found_by_its_serial():
    cfg = config(mine={"usb_id": "03f0:4117", "serial": "AAA", "usb_path": "1-1"},
                 other={"usb_id": "03f0:4117", "serial": "BBB", "usb_path": "1-2"})
    moved = hp("AAA", path="1-2")  # now in the port where 'other' was
    assert assign_sections([moved], cfg, {}) == {moved.key: "mine"}


def test_serial_section_does_not_take_another_serial():
    cfg = config(mine={"usb_id": "03f0:4117", "serial": "AAA"})
    assert assign_sections([hp("ZZZ")], cfg, {}) == {}


def test_other_model_is_not_matched():
    cfg = config(laser={"usb_id": "03f0:2b17"})
    assert assign_sections([hp("AAA")], cfg, {}) == {}


def test_section_pinned_to_the_node_p910nd_style_takes_whatever_is_there():
    cfg = config(pinned={"device": "/dev/usb/lp0"})
    assert assign_sections([hp("AAA", node="/dev/usb/lp0")], cfg, {}) == {hp("AAA").key: "pinned"}
    assert assign_sections([hp("AAA", node="/dev/usb/lp1")], cfg, {}) == {}


def test_exact_section_claims_before_a_previous_loose_holder():
    cfg = config(any_1018={"usb_id": "03f0:4117"}, mine={"usb_id": "03f0:4117", "serial": "AAA"})
    a = hp("AAA")
    assert assign_sections([a], cfg, {a.key: "any_1018"}) == {a.key: "mine"}


def test_removed_section_releases_its_printer():
    a = hp("AAA")
    assert assign_sections([a], config(), {a.key: "gone"}) == {}


def test_new_printer_defaults():
    bidi = UsbIdentity("04f9", "0042", serial="S1", usb_path="1-1", protocol=2)
    assert new_printer_values(bidi, host_based=False, firmware="") == {
        "enabled": True, "usb_id": "04f9:0042", "serial": "S1", "usb_path": "1-1",
        "bidirectional": True, "firmware": "", "mdns": True}
    no_serial = UsbIdentity("03f0", "4117", usb_path="1-1.3", protocol=2)
    values = new_printer_values(no_serial, host_based=True, firmware="sihp1018.dl")
    assert values["usb_path"] == "1-1.3" and values["serial"] == ""
    assert values["bidirectional"] is False and values["firmware"] == "sihp1018.dl"


def test_bidirectional_follows_the_interface_protocol():
    def proto(p):
        return UsbIdentity("1111", "2222", protocol=p)

    assert default_bidirectional(proto(1), False) is False
    assert default_bidirectional(proto(2), False) is True
    assert default_bidirectional(proto(3), False) is True
    assert default_bidirectional(proto(None), False) is False
    assert default_bidirectional(proto(2), True) is False  # host-based HP LaserJet


def test_identity_key_prefers_the_serial():
    assert UsbIdentity("03f0", "4117", "S", "1-1").key == ("03f0:4117", "serial", "S")
    assert UsbIdentity("03f0", "4117", "", "1-1").key == ("03f0:4117", "path", "1-1")


def test_unique_label_numbers_a_second_printer_of_a_model():
    assert unique_label("HP LaserJet 1018", []) == "HP LaserJet 1018"
    assert unique_label("HP LaserJet 1018", ["hp laserjet 1018"]) == "HP LaserJet 1018 (2)"
    assert unique_label("X", ["X", "X (2)"]) == "X (3)"


def test_printer_strings_are_cleaned_the_same_way_on_every_read():
    raw = UsbIdentity("03f0", "4117", serial=" AB\x1bC\r\n", manufacturer="HP\x00",
                      product="Laser\tJet ")
    assert (raw.serial, raw.manufacturer, raw.product) == ("AB C", "HP", "Laser Jet")
    assert raw == UsbIdentity("03f0", "4117", serial="AB C", manufacturer="HP",
                              product="Laser Jet")
