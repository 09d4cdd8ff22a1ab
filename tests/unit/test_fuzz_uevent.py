"""Property tests for USB hotplug events as the daemon's udev watcher receives them: any ACTION,
SUBSYSTEM, DEVPATH and DEVNAME (missing, garbage, not UTF-8) over any sysfs attributes.

Whatever arrives, the watcher's drain raises nothing and handles the next event, reports exactly
the printer sysfs describes (or nothing), reads sysfs without writing to it, and a printer it
reports is saved by autoadd so that a replug finds it again. The checks are the ones the
coverage-guided harness (tests/fuzz/fuzz_uevent.py, `make fuzz`) uses: parser_properties."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_properties import UeventInput, check_uevent, parse_uevent_input
from test_fuzz_usb_parsing import attribute_bytes

from usbprintd.usb.identity import UsbIdentity

SEEDS = Path(__file__).resolve().parents[1] / "fuzz" / "seeds" / "uevent"
UEVENT_FUZZ = settings(max_examples=60, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])

NOT_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80add", b"lp\xfe0"])
KERNEL_CHARS = string.ascii_letters + string.digits + "-.:_!"
DEVNAMES = [b"usb/lp0", b"/dev/usb/lp0", b"bus/usb/001/003", b""]
KINDS = {  # the events the watcher meets: ACTION, SUBSYSTEM, what DEVPATH names
    "lp add": ("add", "usbmisc", "lp"),
    "lp remove": ("remove", "usbmisc", "lp"),
    "lp change": ("change", "usbmisc", "lp"),
    "hiddev add": ("add", "usbmisc", "hiddev"),
    "usb device add": ("add", "usb", "device"),
    "usb interface bind": ("bind", "usb", "interface"),
    "usb device remove": ("remove", "usb", "device"),
    "other subsystem": ("add", "hidraw", "any"),
}


def sysfs_name(chars: str = KERNEL_CHARS) -> st.SearchStrategy[bytes]:
    return (st.text(chars, min_size=1, max_size=12).filter(lambda n: n not in (".", ".."))
            .map(str.encode))


usb_device = st.sampled_from([b"1-1", b"1-1.2", b"2-1.4.3", b"usb1"]) | sysfs_name()
NODE_NAMES = {
    "lp": st.sampled_from([b"lp0", b"lp1", b"lp15", b"lp", b"lp!0"]) | sysfs_name().map(
        lambda name: b"lp" + name),
    "hiddev": st.sampled_from([b"hiddev0", b"hiddev1"]) | sysfs_name(),
}
any_name = sysfs_name(string.printable.replace("/", ""))


@st.composite
def devpaths(draw: st.DrawFn, names: str) -> bytes:
    """The path of a USB device, an interface, a node ('lp', 'hiddev') or any directory."""
    device = draw(usb_device)
    parent = b"/devices/pci0000:00/0000:00:14.0/usb1/"
    if names == "device":
        return parent + device
    if names == "interface":
        return parent + device + b"/" + device + b":1.0"
    if names in NODE_NAMES:
        return parent + device + b"/" + device + b":1.0/usbmisc/" + draw(NODE_NAMES[names])
    return b"/" + b"/".join(draw(st.lists(any_name, min_size=1, max_size=6)))


@st.composite
def event_properties(draw: st.DrawFn, kind: str, not_utf8: str | None = None) -> dict[str, bytes]:
    """The properties of an event of `kind`, maybe with ACTION, SUBSYSTEM or DEVNAME turned
    into any text or (ACTION, DEVNAME) left out; `not_utf8` names a field that then never is
    valid UTF-8."""
    action, subsystem, names = KINDS[kind]
    properties = {"ACTION": action.encode(), "SUBSYSTEM": subsystem.encode(),
                  "DEVPATH": draw(devpaths(names)), "DEVNAME": draw(st.sampled_from(DEVNAMES)),
                  "SEQNUM": draw(st.binary(max_size=6))}
    garbled = draw(st.sampled_from([None, "ACTION", "SUBSYSTEM", "DEVNAME"]))
    if garbled is not None:
        properties[garbled] = draw(st.text(max_size=12)).encode()
        if garbled != "SUBSYSTEM" and draw(st.booleans()):
            del properties[garbled]
    if not_utf8 == "DEVPATH":
        properties["DEVPATH"] += draw(NOT_UTF8)
    elif not_utf8 is not None:
        properties[not_utf8] = draw(NOT_UTF8)
    return properties


device_attributes = st.dictionaries(
    st.sampled_from(["idVendor", "idProduct", "serial", "manufacturer", "product", "busnum",
                     "devnum"]), attribute_bytes)
interface_attributes = st.dictionaries(
    st.sampled_from(["bInterfaceProtocol", "bInterfaceClass"]), attribute_bytes)
printer_attributes = st.fixed_dictionaries(
    {"idVendor": st.sampled_from([b"03f0", b"04f9", b"0525"]),
     "idProduct": st.sampled_from([b"4117", b"a4a8"])},
    optional={"serial": attribute_bytes, "manufacturer": attribute_bytes,
              "product": attribute_bytes})


def check(event: UeventInput):
    with tempfile.TemporaryDirectory(prefix="usbprintd-uevent-") as root:
        return check_uevent(Path(root), event)


@pytest.mark.parametrize("kind", KINDS)
@UEVENT_FUZZ
@given(data=st.data())
def test_any_uevent_is_handled_or_skipped_without_stopping_the_watcher(kind: str, data) -> None:
    properties = data.draw(event_properties(kind), "properties")
    device = data.draw(device_attributes | printer_attributes, "device attributes")
    check(UeventInput(properties, device, data.draw(interface_attributes)))


@UEVENT_FUZZ
@given(st.fixed_dictionaries({"ACTION": st.just(b"add"), "SUBSYSTEM": st.just(b"usbmisc"),
                              "DEVPATH": devpaths("lp")},
                             optional={"DEVNAME": st.sampled_from(DEVNAMES)}),
       printer_attributes, interface_attributes)
def test_every_lp_add_with_usb_ids_reports_the_printer_autoadd_can_save(
    properties: dict[str, bytes], device: dict[str, bytes], interface: dict[str, bytes]
) -> None:
    reports = check(UeventInput(properties, device, interface))
    assert reports is not None and len(reports.added) == 1  # not vacuous: a printer came


# A field that is not UTF-8 makes pyudev raise when the watcher reads it. The kernel does not
# send such events, but the watcher promises that one odd event never stops hotplug.
@pytest.mark.parametrize("field", ["ACTION", "SUBSYSTEM", "DEVPATH", "DEVNAME"])
@settings(UEVENT_FUZZ, max_examples=40)
@given(data=st.data())
def test_a_uevent_field_that_is_not_utf8_skips_that_event_only(field: str, data) -> None:
    properties = data.draw(st.sampled_from(list(KINDS)).flatmap(
        lambda kind: event_properties(kind, not_utf8=field)), "properties")
    device = data.draw(device_attributes | printer_attributes)
    check(UeventInput(properties, device, data.draw(interface_attributes)))


HP_1018 = UsbIdentity(vid="03f0", pid="4117", serial="SN1", usb_path="1-1",
                      manufacturer="Hewlett-Packard", product="HP LaserJet 1018", protocol=2,
                      busnum=1, devnum=3)
E2E_PRINTER = UsbIdentity(vid="0525", pid="a4a8", serial="", usb_path="1-1.2",
                          manufacturer="Linux", product="E2E Test Printer", protocol=1,
                          busnum=1, devnum=2)
SEED_REPORTS = {  # seed file: (identities added, devpaths removed, USB changes)
    "lp0-add-hp-laserjet-1018": ([(HP_1018, "/dev/usb/lp0")], [], 0),
    "lp0-add-netlink": ([(HP_1018, "/dev/usb/lp0")], [], 0),
    "lp1-add-no-serial": ([(E2E_PRINTER, "/dev/usb/lp1")], [], 0),
    "lp0-remove": ([], ["/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/usbmisc/lp0"], 0),
    "hiddev0-add": ([], [], 0),
    "usb-device-add": ([], [], 1),
    "usb-interface-bind": ([], [], 1),
}


def test_every_fuzzing_seed_has_its_expected_outcome_here() -> None:
    assert sorted(p.name for p in SEEDS.iterdir()) == sorted(SEED_REPORTS)


@pytest.mark.parametrize("seed", sorted(SEED_REPORTS))
def test_the_fuzzing_seeds_read_as_the_events_they_are(seed: str) -> None:
    """The harness's input format and the shared check agree with what each real event means."""
    event = parse_uevent_input((SEEDS / seed).read_bytes())
    assert event is not None
    reports = check(event)
    added, removed, usb_changes = SEED_REPORTS[seed]
    assert reports is not None
    assert [(found.identity, found.node) for found in reports.added] == added
    assert (reports.removed, reports.usb_changes) == (removed, usb_changes)
