"""The pyudev adapter: draining the monitor from the event loop, lp add/remove, overflow."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_usb_sysfs import make_device, make_interface

from usbprintd.usb.hotplug import UdevWatcher, event_source, is_lp_device


@dataclass
class FakeDevice:
    action: str
    subsystem: str
    sys_name: str
    sys_path: str
    device_node: str | None = None

    @property
    def device_path(self) -> str:
        return self.sys_path.removeprefix("/sys")


class FakeMonitor:
    """poll(timeout=0) hands out scripted results: a device, None, or an exception."""

    def __init__(self, *results) -> None:
        self.results = list(results)

    def poll(self, timeout=None):
        assert timeout == 0
        if not self.results:
            return None
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


class Calls:
    def __init__(self) -> None:
        self.added, self.removed, self.usb, self.overflow = [], [], 0, 0

    def watcher(self, *results) -> UdevWatcher:
        watcher = UdevWatcher(self.added.append, self.removed.append, self.usb_change,
                              self.overflowed)
        watcher.monitor = FakeMonitor(*results)
        return watcher

    def usb_change(self) -> None:
        self.usb += 1

    def overflowed(self) -> None:
        self.overflow += 1


@pytest.fixture
def lp0(tmp_path: Path) -> FakeDevice:
    device = make_device(tmp_path, "1-1", "03f0", "4117", "SN1")
    interface = make_interface(tmp_path, device, 0, 2, lp="lp0")
    return FakeDevice("add", "usbmisc", "lp0", str(interface / "usbmisc" / "lp0"), "/dev/usb/lp0")


def test_lp_add_is_read_from_sysfs_and_remove_needs_only_the_devpath(lp0: FakeDevice):
    calls = Calls()
    removal = FakeDevice("remove", "usbmisc", "lp0", lp0.sys_path)
    calls.watcher(lp0, removal)._drain()
    [found] = calls.added
    assert (found.node, found.identity.serial, found.identity.usb_path) == (
        "/dev/usb/lp0", "SN1", "1-1")
    assert found.devpath == lp0.device_path
    assert calls.removed == [lp0.device_path]


def test_none_ends_one_drain_and_the_rest_comes_on_the_next_wakeup(lp0: FakeDevice):
    calls = Calls()
    usb_event = FakeDevice("add", "usb", "1-1", "/sys/devices/x/1-1")
    watcher = calls.watcher(usb_event, None, lp0)  # None: a message the filters dropped
    watcher._drain()
    assert (calls.usb, calls.added) == (1, [])
    watcher._drain()  # the fd is still readable, so the loop calls again
    assert len(calls.added) == 1


def test_netlink_overflow_triggers_a_rescan_and_draining_goes_on(lp0: FakeDevice):
    calls = Calls()
    calls.watcher(OSError(errno.ENOBUFS, "No buffer space available"), lp0)._drain()
    assert calls.overflow == 1 and len(calls.added) == 1


def test_other_receive_errors_are_logged_not_raised(caplog):
    calls = Calls()
    calls.watcher(OSError(errno.EIO, "I/O error"))._drain()
    assert "USB event monitor" in caplog.text


def test_vanished_device_and_other_usbmisc_devices_are_ignored(tmp_path: Path):
    calls = Calls()
    gone = FakeDevice("add", "usbmisc", "lp3", str(tmp_path / "gone" / "usbmisc" / "lp3"))
    hiddev = FakeDevice("add", "usbmisc", "hiddev0", str(tmp_path / "hiddev0"))
    calls.watcher(gone, hiddev)._drain()
    assert calls.added == [] and calls.removed == []


def test_a_faulty_handler_does_not_stop_hotplug(lp0: FakeDevice, caplog):
    def broken(_found):
        raise RuntimeError("bug")

    second = FakeDevice("remove", "usbmisc", "lp0", lp0.sys_path)
    removed = []
    watcher = UdevWatcher(broken, removed.append, lambda: None, lambda: None)
    watcher.monitor = FakeMonitor(lp0, second)
    watcher._drain()
    assert removed == [lp0.device_path] and "handling USB event" in caplog.text


def test_event_source_follows_the_udev_control_socket(tmp_path: Path):
    assert event_source(str(tmp_path / "control")) == "kernel"
    (tmp_path / "control").touch()
    assert event_source(str(tmp_path / "control")) == "udev"


def test_is_lp_device():
    assert is_lp_device("usbmisc", "lp0")
    assert not is_lp_device("usbmisc", "hiddev0")
    assert not is_lp_device("usb", "lp0")


def test_real_monitor_starts_and_stops_on_the_loop():
    """pyudev's netlink monitor on this kernel: registered with the loop, then removed."""
    async def scenario():
        calls = Calls()
        watcher = UdevWatcher(calls.added.append, calls.removed.append, calls.usb_change,
                              calls.overflowed)
        loop = asyncio.get_running_loop()
        watcher.start(loop)
        assert watcher.scan() == [] or Path("/sys/class/usbmisc").exists()
        watcher.stop()
        assert not loop.remove_reader(watcher.monitor.fileno())  # already removed

    asyncio.run(scenario())
