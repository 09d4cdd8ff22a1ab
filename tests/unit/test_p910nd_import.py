"""Importing printers from OpenWrt's /etc/config/p910nd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from usbprintd.config import PrinterSettings, parse_config
from usbprintd.p910nd_import import plan_import, run_import
from usbprintd.uci import AddSection, FileStore, SetOption, UciDocument, UciError, parse_sections

# The file the p910nd package installs (openwrt/packages net/p910nd/files/p910nd.config).
OPENWRT_DEFAULT = """\
config p910nd
	option device        /dev/usb/lp0
	# Actual TCP port is 9100 plus this value
	# Valid values are 0,1,2
	option port          0
	option bidirectional 1
	option enabled       0
	# Override running as user p910nd, group lp
	option runas_root    0
	# Be aware that you can only advertise one printer on this host via mDNS
	option mdns          0
	option mdns_ty       'My Printer Manufacturer/Model'
	option mdns_note     'Basement'
	option mdns_product  ''
	option mdns_mfg      ''
	option mdns_mdl      ''
	option mdns_cmd      ''
"""

# What the p910nd hotplug script leaves behind after an HP LaserJet 1018 was plugged in
# (written by `uci commit`, hence libuci's quoting).
HOTPLUG_GENERATED = """\

config p910nd
	option device '/dev/usb/lp0'
	option port '0'
	option bidirectional '1'
	option enabled '1'
	option runas_root '0'
	option mdns '1'
	option mdns_ty 'HP LaserJet 1018'
	option mdns_note 'Located near router'
	option mdns_product '(HP LaserJet 1018)'
	option mdns_mfg 'Hewlett-Packard'
	option mdns_mdl 'HP LaserJet 1018'
	option mdns_cmd 'ACL'
	option usbvidpid '03f0/4117'
	option driver_file '/opt/p910nd_drivers/Hewlett-Packard_HP_LaserJet_1018_03f0_4117.bin'

config hotplug
	option driver_home '/opt/p910nd_drivers'

"""

# Edited in LuCI: ticking 'enabled' (default true) and unticking 'bidirectional' deleted both
# options; the port list is rmempty; mdns_cmd is a comma-joined DynamicList.
LUCI_EDITED = """\

config p910nd
	option device '/dev/usb/lp1'
	option bind '192.168.1.1'
	option mdns '1'
	option mdns_ty 'Brother HL-2130'
	option mdns_cmd 'PCL,PJL,POSTSCRIPT'

config p910nd
	option device '/dev/usb/lp2'
	option port '2'
	option enabled '1'
	option runas_root '1'
	option usbvidpid '4f9/27'

"""


def sections(text: str):
    return parse_sections(text, "p910nd")


def imported_printers(plan, current=()) -> dict[str, PrinterSettings]:
    """Apply a plan to a document and read the printers back the way the daemon does."""
    document = UciDocument.from_sections(current)
    document.apply(plan.changes)
    return {p.section: p for p in parse_config(document.sections).printers}


def test_the_shipped_default_config_becomes_one_disabled_printer() -> None:
    plan = plan_import(sections(OPENWRT_DEFAULT), [])
    assert plan.imported == ["printer_on_lp0"]
    printer = imported_printers(plan)["printer_on_lp0"]
    assert printer == PrinterSettings(
        section="printer_on_lp0", enabled=False, name="Printer on lp0", device="/dev/usb/lp0",
        port=9100, bidirectional=True, mdns=False)
    text = "\n".join(plan.notes)
    assert "mdns_note='Basement'" in text  # dropped TXT fields are named
    assert "stop p910nd" not in text  # nothing enabled, nothing to fight over


def test_booleans_are_written_explicitly() -> None:
    plan = plan_import(sections(OPENWRT_DEFAULT), [])
    written = {(c.option, c.value) for c in plan.changes if isinstance(c, SetOption)}
    assert {("enabled", "0"), ("bidirectional", "1"), ("mdns", "0")} <= written
    assert plan.changes[0] == AddSection("printer", "printer_on_lp0")


def test_a_hotplug_generated_section_is_found_by_usb_id_with_its_firmware() -> None:
    plan = plan_import(sections(HOTPLUG_GENERATED), [])
    printer = imported_printers(plan)["hp_laserjet_1018"]
    assert printer == PrinterSettings(
        section="hp_laserjet_1018", enabled=True, name="HP LaserJet 1018", usb_id="03f0:4117",
        device="", port=9100, bidirectional=True,
        firmware="Hewlett-Packard_HP_LaserJet_1018_03f0_4117.bin", mdns=True)
    text = "\n".join(plan.notes)
    assert "/opt/p910nd_drivers/Hewlett-Packard_HP_LaserJet_1018_03f0_4117.bin" in text
    assert "device /dev/usb/lp0 is not pinned" in text
    assert "mdns_note='Located near router'" in text
    assert "/etc/init.d/p910nd stop" in text  # an enabled import: p910nd must make way


def test_a_luci_edited_config_follows_p910nd_defaults_for_deleted_options() -> None:
    plan = plan_import(sections(LUCI_EDITED), [])
    printers = imported_printers(plan)
    brother = printers["brother_hl_2130"]
    assert (brother.enabled, brother.bidirectional, brother.port, brother.bind) == (
        False, False, 9100, "192.168.1.1")
    assert brother.device == "/dev/usb/lp1" and brother.mdns is True
    second = printers["printer_on_lp2"]
    assert (second.enabled, second.port, second.usb_id) == (True, 9102, "04f9:0027")
    text = "\n".join(plan.notes)
    assert "'enabled' was not set" in text
    assert "port was not set: 9100" in text
    assert "runas_root dropped" in text
    assert "mdns_cmd='PCL,PJL,POSTSCRIPT'" in text


def test_importing_twice_adds_nothing() -> None:
    first = plan_import(sections(HOTPLUG_GENERATED + LUCI_EDITED), [])
    document = UciDocument()
    document.apply(first.changes)
    second = plan_import(sections(HOTPLUG_GENERATED + LUCI_EDITED), document.sections)
    assert len(first.imported) == 3
    assert second.changes == [] and second.imported == []
    assert sum("already imported" in note for note in second.notes) == 3


def test_a_printer_added_by_usbprintd_itself_is_not_imported_again() -> None:
    current = sections("config printer 'hp_laserjet_1018'\n\toption usb_id '03f0:4117'\n"
                       "\toption port '9100'\n")
    plan = plan_import(sections(HOTPLUG_GENERATED), current)
    assert plan.changes == []
    assert "already imported as printer 'hp_laserjet_1018'" in plan.notes[0]


def test_identical_printers_on_different_ports_are_both_imported() -> None:
    two = HOTPLUG_GENERATED + HOTPLUG_GENERATED.replace("option port '0'", "option port '1'")
    plan = plan_import(sections(two), [])
    printers = imported_printers(plan)
    assert [(p.section, p.port) for p in printers.values()] == [
        ("hp_laserjet_1018", 9100), ("hp_laserjet_1018_2", 9101)]


def test_a_port_clash_imports_the_later_printer_disabled() -> None:
    # the hotplug script gives a second section port 0 as well; p910nd then hangs on the lock
    clash = OPENWRT_DEFAULT.replace("enabled       0", "enabled       1") + LUCI_EDITED.replace(
        "option port '2'", "option port '0'")
    plan = plan_import(sections(clash), [])
    printers = imported_printers(plan)
    assert printers["printer_on_lp0"].enabled is True
    assert printers["printer_on_lp2"].enabled is False
    assert any("port 9100 is already used by printer 'printer_on_lp0'" in n for n in plan.notes)
    assert all(p.valid for p in printers.values())


def test_section_names_do_not_collide_with_existing_sections() -> None:
    current = sections("config printer 'hp_laserjet_1018'\n\toption usb_id '03f0:1234'\n"
                       "\toption port '9105'\n")
    plan = plan_import(sections(HOTPLUG_GENERATED), current)
    assert plan.imported == ["hp_laserjet_1018_2"]


@pytest.mark.parametrize("options, note", [
    ("\toption port 'x'\n", "not a whole number"),
    ("\toption port '70000'\n", "out of range"),
    ("", "no device is set"),
])
def test_unusable_sections_are_skipped_with_the_reason(options: str, note: str) -> None:
    device = "" if not options else "\toption device '/dev/usb/lp0'\n"
    plan = plan_import(sections(f"config p910nd\n{device}{options}"), [])
    assert plan.changes == []
    assert "skipped" in plan.notes[0] and note in plan.notes[1]


def test_a_bind_that_is_not_an_address_imports_the_printer_disabled() -> None:
    plan = plan_import(sections("config p910nd\n\toption device '/dev/usb/lp0'\n"
                                "\toption enabled '1'\n\toption bind 'lan'\n"), [])
    printer = imported_printers(plan)["printer_on_lp0"]
    assert (printer.enabled, printer.bind) == (False, "")
    assert any("'lan' is not an IP address" in note for note in plan.notes)


def test_unknown_options_and_sections_are_reported_not_lost() -> None:
    plan = plan_import(sections("config p910nd\n\toption device '/dev/usb/lp0'\n"
                                "\toption colour 'red'\n\nconfig spooler\n"), [])
    text = "\n".join(plan.notes)
    assert "options without an equivalent, dropped: colour" in text
    assert "type 'spooler' is not a printer" in text


def test_a_bare_driver_file_name_is_found_in_driver_home() -> None:
    text = ("config p910nd\n\toption device '/dev/usb/lp0'\n\toption driver_file 'sihp1020.dl'\n"
            "\nconfig hotplug\n\toption driver_home '/root/blobs'\n")
    plan = plan_import(sections(text), [])
    assert imported_printers(plan)["printer_on_lp0"].firmware == "sihp1020.dl"
    assert any("/root/blobs/sihp1020.dl" in note for note in plan.notes)


# --- run_import: files in, file out --------------------------------------------------------------

EXISTING = """\
# my router's usbprintd
config usbprintd 'main'
	option autoadd '1'
"""


def test_run_import_writes_the_printers_and_keeps_the_existing_file(tmp_path: Path) -> None:
    source, target = tmp_path / "p910nd", tmp_path / "usbprintd"
    source.write_text(HOTPLUG_GENERATED)
    target.write_text(EXISTING)
    notes = run_import(source, FileStore(target))
    assert notes[-1] == f"imported 1 printer into file {target}"
    text = target.read_text()
    assert text.startswith(EXISTING)
    assert "config printer 'hp_laserjet_1018'\n\toption enabled '1'\n" in text
    assert "\toption bidirectional '1'\n" in text
    printer = parse_config(FileStore(target).load()).printer("hp_laserjet_1018")
    assert printer is not None and printer.valid and printer.usb_id == "03f0:4117"

    again = run_import(source, FileStore(target))
    assert again[-1] == f"nothing to import from {source}"
    assert target.read_text() == text


def test_run_import_fails_clearly_on_a_missing_or_broken_source(tmp_path: Path) -> None:
    target = tmp_path / "usbprintd"
    with pytest.raises(UciError, match="no such file"):
        run_import(tmp_path / "absent", FileStore(target))
    broken = tmp_path / "p910nd"
    broken.write_text("config p910nd\n\toption device '/dev/usb/lp0\n")
    with pytest.raises(UciError, match=f"{broken}:2: unterminated"):
        run_import(broken, FileStore(target))
    assert not target.exists()


def test_the_import_command_prints_the_notes(tmp_path: Path) -> None:
    source, target = tmp_path / "p910nd", tmp_path / "usbprintd"
    source.write_text(OPENWRT_DEFAULT)
    result = subprocess.run(
        [sys.executable, "-m", "usbprintd", "import-p910nd", "--from", str(source),
         "--config", str(target)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "-> printer 'printer_on_lp0'" in result.stdout
    assert "config printer 'printer_on_lp0'" in target.read_text()
