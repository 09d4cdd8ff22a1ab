"""Coverage-guided fuzzing of USB hotplug events: the uevent the kernel sends when a printer
comes or goes, and the sysfs attributes of the device it names (the printer's own strings).

An input is uevent text — `KEY=value` lines, newline- or NUL-separated as in a sysfs `uevent`
file or the netlink message — then a blank line, then the device's sysfs attributes as
`name=value` lines (`bInterface*` belong to the printer interface, the rest to the USB device).
The event goes through the daemon's udev watcher as pyudev would deliver it, over a sysfs tree
built in a scratch directory. Whatever it says: the watcher raises nothing, an lp add reports
exactly the identity sysfs gives (or nothing when the IDs are missing), a remove reports the
DEVPATH, sysfs is only read, and a printer seen for the first time is saved by autoadd so that
it is recognised after a replug. Seeds: lp and usb events of the printers the tests model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness import fuzz, instrumented, reset_dir, scratch_dir

with instrumented():
    from parser_properties import check_saved_printer_is_recognised, check_sysfs_identity, tree

    from usbprintd.usb.hotplug import UdevWatcher
    from usbprintd.usb.manager import FoundPrinter

SCRATCH = scratch_dir()
SYS = SCRATCH / "sys"
ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")
NAME_MAX = 255
MAX_DEPTH = 32  # controller, root hub, 7 tiers of hubs, interface, class, node: far fewer
KERNEL_ID = re.compile(r"[0-9a-f]{4}\Z")  # idVendor/idProduct: the kernel writes "%04x"
KERNEL_PATH = re.compile(r"(/[!-.0-~]+)+\Z")  # names the kernel gives USB devices: printable


@dataclass
class UeventDevice:
    """The parts of a pyudev Device the watcher uses, as libudev derives them from the event."""

    properties: dict[str, str]

    @property
    def action(self) -> str | None:
        return self.properties.get("ACTION")

    @property
    def subsystem(self) -> str | None:
        return self.properties.get("SUBSYSTEM")

    @property
    def device_path(self) -> str:
        return self.properties["DEVPATH"]

    @property
    def sys_path(self) -> str:
        return f"{SYS}{self.device_path}"

    @property
    def sys_name(self) -> str:
        return self.device_path.rsplit("/", 1)[-1].replace("!", "/")

    @property
    def device_node(self) -> str | None:
        name = self.properties.get("DEVNAME")
        if not name:
            return None
        return name if name.startswith("/") else f"/dev/{name}"


class Reports:
    """What the watcher told its owner about one event."""

    def __init__(self) -> None:
        self.added: list[FoundPrinter] = []
        self.removed: list[str] = []
        self.usb_changes = 0

    def usb_changed(self) -> None:
        self.usb_changes += 1


def parse(data: bytes) -> tuple[dict[str, str], dict[str, bytes], dict[str, bytes]] | None:
    """Event properties, device attributes and interface attributes; None for an event libudev
    would not deliver (no ACTION, SUBSYSTEM or DEVPATH) or a DEVPATH the kernel does not make
    for USB devices (their names are printable ASCII: '1-1.2', '1-1.2:1.0', 'lp0')."""
    event, _, attributes = data.partition(b"\n\n")
    properties: dict[str, str] = {}
    for line in re.split(rb"[\n\0]", event):
        key, equals, value = line.decode("utf-8", "replace").partition("=")
        if equals:
            properties.setdefault(key, value)
    devpath = properties.get("DEVPATH", "")
    parts = devpath.split("/")[1:]
    if not (properties.get("ACTION") and properties.get("SUBSYSTEM") and KERNEL_PATH.match(devpath)
            and len(parts) <= MAX_DEPTH
            and all(p not in ("", ".", "..") and len(p) <= NAME_MAX for p in parts)):
        return None
    device: dict[str, bytes] = {}
    interface: dict[str, bytes] = {}
    for line in attributes.split(b"\n"):
        name, equals, value = line.partition(b"=")
        text = name.decode("ascii", "replace")
        if equals and ATTRIBUTE_NAME.match(text):
            (interface if text.startswith("bInterface") else device).setdefault(text, value)
    return properties, device, interface


def build_sysfs(devpath: str, device: dict[str, bytes], interface: dict[str, bytes]) -> Path:
    """The node's directory with the interface two levels up and the USB device above it
    (…/1-1/1-1:1.0/usbmisc/lp0), attributes written as sysfs shows them (one line); those that
    cannot be written are dropped from `device` and `interface`."""
    reset_dir(SYS)
    node = SYS / devpath.lstrip("/")
    node.mkdir(parents=True)
    ancestors = [node, *node.parents]
    depth = len(node.relative_to(SYS).parts)
    for directory, attributes in ((ancestors[min(3, depth - 1)], device),
                                  (ancestors[min(2, depth - 1)], interface)):
        for name in list(attributes):
            if (directory / name).is_dir():
                del attributes[name]  # a directory of the path has that name
            else:
                (directory / name).write_bytes(attributes[name] + b"\n")
    return node


def one_input(data: bytes) -> None:
    parsed = parse(data)
    if parsed is None:
        return
    properties, device_attrs, interface_attrs = parsed
    event = UeventDevice(properties)
    try:
        node = build_sysfs(event.device_path, device_attrs, interface_attrs)
    except OSError:
        return  # longer than a path may be: no such device exists
    sysfs_before = tree(SYS)

    reports = Reports()
    watcher = UdevWatcher(reports.added.append, reports.removed.append, reports.usb_changed,
                          lambda: None)
    watcher._dispatch(event)  # the daemon logs what escapes here; nothing may

    lp = event.subsystem == "usbmisc" and event.sys_name.startswith("lp")
    if lp and event.action == "add":
        identity = check_sysfs_identity(node, device_attrs)
        expected = [] if identity is None else [FoundPrinter(
            event.device_path, event.device_node or f"/dev/usb/{event.sys_name}", identity)]
        assert reports.added == expected, (reports.added, expected)
        if identity is not None and all(KERNEL_ID.match(i) for i in (identity.vid, identity.pid)):
            check_saved_printer_is_recognised(reset_dir(SCRATCH / "config"), identity, {})
    else:
        assert not reports.added
    assert reports.removed == ([event.device_path] if lp and event.action == "remove" else [])
    assert reports.usb_changes == (1 if not lp and event.subsystem == "usb" else 0)
    assert tree(SYS) == sysfs_before  # sysfs is only read


if __name__ == "__main__":
    fuzz(one_input)
