"""Coverage-guided fuzzing of USB hotplug events: the uevent the kernel sends when a printer
comes or goes, and the sysfs attributes of the device it names (the printer's own strings).

An input is uevent text — `KEY=value` lines, newline- or NUL-separated as in a sysfs `uevent`
file or the netlink message — then a blank line, then the device's sysfs attributes as
`name=value` lines (`bInterface*` belong to the printer interface, the rest to the USB device).
Values stay bytes, so a field that is not UTF-8 reaches the watcher as pyudev delivers it
(raising when read). The event goes through the daemon's udev watcher, over a sysfs tree built
in a scratch directory, and is held to the checks the hypothesis tests use
(parser_properties.check_uevent). Seeds: lp and usb events of the printers the tests model."""

from __future__ import annotations

from harness import fuzz, instrumented, reset_dir, scratch_dir

with instrumented():
    from parser_properties import check_uevent, parse_uevent_input

SCRATCH = scratch_dir()


def one_input(data: bytes) -> None:
    event = parse_uevent_input(data)
    if event is not None:
        check_uevent(reset_dir(SCRATCH / "event"), event)


if __name__ == "__main__":
    fuzz(one_input)
