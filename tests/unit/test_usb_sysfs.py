"""Identity from sysfs attributes of the lp device's parents, and printers without usblp."""

from __future__ import annotations

from pathlib import Path

from usbprintd.usb.sysfs import find_unbound_printers, read_identity


def make_device(root: Path, name: str, vid: str, pid: str, serial: str | None = None,
                **strings: str) -> Path:
    device = root / "devices" / "pci0000:00" / "usb1" / name
    device.mkdir(parents=True)
    (device / "uevent").write_text("DEVTYPE=usb_device\n")
    attrs = {"idVendor": vid, "idProduct": pid, "busnum": "1", "devnum": "3", **strings}
    if serial is not None:
        attrs["serial"] = serial
    for key, value in attrs.items():
        (device / key).write_text(value + "\n")
    links = root / "bus" / "usb" / "devices"
    links.mkdir(parents=True, exist_ok=True)
    (links / name).symlink_to(device)
    return device


def make_interface(root: Path, device: Path, number: int, protocol: int,
                   lp: str | None = None, driver: str | None = None) -> Path:
    interface = device / f"{device.name}:1.{number}"
    interface.mkdir()
    for key, value in {"bInterfaceClass": "07", "bInterfaceSubClass": "01",
                       "bInterfaceProtocol": f"{protocol:02x}",
                       "bInterfaceNumber": f"{number:02x}"}.items():
        (interface / key).write_text(value + "\n")
    if lp:
        (interface / "usbmisc" / lp).mkdir(parents=True)
    if driver:
        driver_dir = root / "bus" / "usb" / "drivers" / driver
        driver_dir.mkdir(parents=True, exist_ok=True)
        (interface / "driver").symlink_to(driver_dir)
    (root / "bus" / "usb" / "devices" / interface.name).symlink_to(interface)
    return interface


def test_identity_comes_from_the_usb_device_and_interface(tmp_path: Path):
    device = make_device(tmp_path, "1-1.2", "03F0", "4117", "ABC123",
                         manufacturer="Hewlett-Packard", product="HP LaserJet 1018")
    interface = make_interface(tmp_path, device, 0, 2, lp="lp0")
    identity = read_identity(interface / "usbmisc" / "lp0")
    assert identity.usb_id == "03f0:4117"
    assert (identity.serial, identity.usb_path, identity.protocol) == ("ABC123", "1-1.2", 2)
    assert (identity.manufacturer, identity.product) == ("Hewlett-Packard", "HP LaserJet 1018")
    assert (identity.busnum, identity.devnum) == (1, 3)


def test_missing_serial_reads_as_empty(tmp_path: Path):
    device = make_device(tmp_path, "1-1", "04f9", "0042")
    interface = make_interface(tmp_path, device, 0, 1, lp="lp1")
    assert read_identity(interface / "usbmisc" / "lp1").serial == ""


def test_printer_with_usblp_is_not_listed(tmp_path: Path):
    (tmp_path / "module" / "usblp").mkdir(parents=True)
    device = make_device(tmp_path, "1-1", "03f0", "4117", "S")
    make_interface(tmp_path, device, 0, 2, lp="lp0", driver="usblp")
    assert find_unbound_printers(tmp_path) == []


def test_ipp_usb_only_printer_is_listed_with_its_reason(tmp_path: Path):
    (tmp_path / "module" / "usblp").mkdir(parents=True)
    device = make_device(tmp_path, "1-2", "03f0", "2d2a", "IPP1")
    make_interface(tmp_path, device, 0, 4)
    make_interface(tmp_path, device, 1, 4)
    [printer] = find_unbound_printers(tmp_path)
    assert printer.identity.serial == "IPP1" and printer.protocols == (4,)
    assert "IPP-over-USB only" in printer.reason


def test_missing_driver_module_is_named(tmp_path: Path):
    device = make_device(tmp_path, "1-1", "03f0", "4117", "S")
    make_interface(tmp_path, device, 0, 2)
    [printer] = find_unbound_printers(tmp_path)
    assert "kmod-usb-printer" in printer.reason


def test_interface_held_by_another_program(tmp_path: Path):
    (tmp_path / "module" / "usblp").mkdir(parents=True)
    device = make_device(tmp_path, "1-1", "03f0", "4117", "S")
    make_interface(tmp_path, device, 0, 2, driver="usbfs")
    [printer] = find_unbound_printers(tmp_path)
    assert printer.driver == "usbfs" and "'usbfs'" in printer.reason


def test_no_usb_bus_means_nothing_to_list(tmp_path: Path):
    assert find_unbound_printers(tmp_path) == []
