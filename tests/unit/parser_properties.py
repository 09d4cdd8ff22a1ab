"""What every parser of outside input guarantees, as plain checks (assertions) on one input.

Shared by the hypothesis property tests in this directory (`make test`) and the atheris harnesses
in tests/fuzz/ (`make fuzz`), so both hold the parsers to the same promises: whatever printers,
files, uevents and browsers send is read or refused with the parser's documented error, never
with another exception, and nothing is written outside the directories the daemon owns.
"""

from __future__ import annotations

import io
import locale
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pyudev._util import ensure_unicode_string  # how pyudev decodes what libudev read

from usbprintd.config import (
    GLOBAL_PARSERS,
    GLOBAL_TYPE,
    PRINTER_TYPE,
    Config,
    GlobalSettings,
    PrinterSettings,
    binds_overlap,
    format_value,
    parse_config,
    printer_changes,
    validate_global_form,
    validate_printer_form,
)
from usbprintd.p910nd_import import plan_import
from usbprintd.uci import (
    AddSection,
    DeleteOption,
    DeleteSection,
    FileStore,
    SetOption,
    UciChange,
    UciDocument,
    UciError,
    UciSection,
    check_value,
    parse_sections,
)
from usbprintd.usb.hotplug import UdevWatcher
from usbprintd.usb.identity import UsbIdentity, exact_match, new_printer_values, unique_label
from usbprintd.usb.ieee1284 import canonical_key, decode_device_id, make_and_model, parse_device_id
from usbprintd.usb.manager import FoundPrinter
from usbprintd.usb.sysfs import NotAUsbPrinter, read_identity
from usbprintd.web.firmware import MAX_NAME_LENGTH, FirmwareError, FirmwareStore, safe_name

# --- IEEE 1284 device IDs -----------------------------------------------------------------------


def check_device_id_text(text: str) -> dict[str, str]:
    """Any text parses into canonical keys and trimmed values without ';'."""
    parsed = parse_device_id(text)
    for key, value in parsed.items():
        assert key and key == canonical_key(key) and key == key.upper()
        assert ";" not in key and ";" not in value and value == value.strip()
    return parsed


def check_ioctl_reply(reply: bytes) -> str:
    """Any GET_DEVICE_ID reply decodes to one trimmed text, never longer than what was sent."""
    text = decode_device_id(reply)
    assert isinstance(text, str) and "\0" not in text and text == text.strip()
    assert len(text.encode()) <= 3 * max(0, len(reply) - 2)
    check_device_id_text(text)
    return text


def check_big_endian_reply(text: str) -> None:
    """An ID sent with a standard big-endian length decodes exactly (when CUPS would take it)."""
    if "\0" in text:
        return
    body = text.strip().encode()
    if len(body) + 2 < 14 or len(body) + 2 > 0xFFFF:
        return  # too short to be told apart from garbage: CUPS's rule
    reply = (len(body) + 2).to_bytes(2, "big") + body + b"\0stale bytes"
    assert decode_device_id(reply) == body.decode()


def check_make_and_model(parsed: dict[str, str], maker: str, product: str) -> None:
    assert isinstance(make_and_model(parsed, maker, product), str)


# --- sysfs attributes and the printer they describe ----------------------------------------------


def write_sysfs(root: Path, attrs: dict[str, bytes], interface_attrs: dict[str, bytes]) -> Path:
    """A usb_device with one printer interface and its lp node below `root`; returns the lp."""
    device = root / "devices" / "usb1" / "1-1.2"
    interface = device / "1-1.2:1.0"
    (interface / "usbmisc" / "lp0").mkdir(parents=True)
    for name, value in attrs.items():
        (device / name).write_bytes(value)
    for name, value in interface_attrs.items():
        (interface / name).write_bytes(value)
    return interface / "usbmisc" / "lp0"


def attribute_text(value: bytes) -> str:
    """A sysfs attribute as the daemon reads it (text in the locale's encoding, trimmed)."""
    return value.decode(locale.getpreferredencoding(False), "replace").strip()


def check_identity(identity: UsbIdentity) -> None:
    assert identity.vid == identity.vid.lower() and identity.vid
    assert identity.serial == identity.serial.strip()
    assert identity.protocol is None or identity.protocol >= 0


def check_sysfs_identity(lp: Path, attrs: dict[str, bytes]) -> UsbIdentity | None:
    """Any attributes give an identity, or NotAUsbPrinter when the IDs are missing or blank."""
    try:
        identity = read_identity(lp)
    except NotAUsbPrinter:
        assert not attribute_text(attrs.get("idVendor", b"")) or not attribute_text(
            attrs.get("idProduct", b""))
        return None
    check_identity(identity)
    return identity


def check_saved_printer_is_recognised(directory: Path, identity: UsbIdentity,
                                      parsed: dict[str, str]) -> None:
    """What autoadd writes (registry.add_printer into the real file store) reads back as a
    section that matches the very same printer, so a replug never adds a second section."""
    from usbprintd.registry import Registry

    path = directory / "usbprintd"
    registry = Registry(FileStore(path))
    registry.reload()
    label = unique_label(make_and_model(parsed, identity.manufacturer, identity.product)
                         or f"USB printer {identity.usb_id}", [])
    section = registry.add_printer(label, new_printer_values(identity, False, ""))

    reread = Registry(FileStore(path))
    assert reread.reload()
    printer = reread.config.printer(section)
    assert printer is not None and printer.valid, printer
    assert exact_match(identity, printer)
    assert printer.display_name == label


# --- uevents: what the hotplug watcher makes of them ---------------------------------------------

UEVENT_NAME_MAX = 255  # a sysfs directory name is a file name
UEVENT_MAX_DEPTH = 32  # controller, root hub, 7 tiers of hubs, interface, class, node: far fewer
SYSFS_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")
KERNEL_ID = re.compile(r"[0-9a-f]{4}\Z")  # idVendor/idProduct: the kernel writes "%04x"
KERNEL_NAME = re.compile(r"[!-.0-~]+\Z")  # the names the kernel gives USB devices: printable
NEXT_LP = b"/devices/platform/next/usb9/9-1/9-1:1.0/usbmisc/lp9"  # the event after the odd one


@dataclass
class UeventInput:
    """One uevent — its properties as the message carries them (bytes) — and the sysfs
    attributes of the device it names: `device` for the USB device, `interface` (bInterface*)
    for the printer interface."""

    properties: dict[str, bytes]
    device: dict[str, bytes] = field(default_factory=dict)
    interface: dict[str, bytes] = field(default_factory=dict)


def is_delivered(properties: dict[str, bytes]) -> bool:
    """libudev hands the watcher only events with a SUBSYSTEM (its filter passed it) and a
    DEVPATH naming a sysfs directory: absolute, no empty, '.' or '..' part, no NUL, every part
    fits a file name."""
    devpath = properties.get("DEVPATH", b"")
    parts = devpath.split(b"/")[1:]
    return bool(properties.get("SUBSYSTEM") and devpath.startswith(b"/") and parts
                and len(parts) <= UEVENT_MAX_DEPTH and b"\0" not in devpath
                and all(p not in (b"", b".", b"..") and len(p) <= UEVENT_NAME_MAX for p in parts))


def parse_uevent_input(data: bytes) -> UeventInput | None:
    """The fuzzing input format: `KEY=value` lines, newline- or NUL-separated as in a sysfs
    `uevent` file or the netlink message, a blank line, then `name=value` sysfs attributes.
    None for an event libudev would not deliver."""
    event, _, attributes = data.partition(b"\n\n")
    properties: dict[str, bytes] = {}
    for line in re.split(rb"[\n\0]", event):
        key, equals, value = line.partition(b"=")
        if equals:
            properties.setdefault(key.decode("ascii", "replace"), value)
    if not is_delivered(properties):
        return None
    parsed = UeventInput(properties)
    for line in attributes.split(b"\n"):
        name, equals, value = line.partition(b"=")
        text = name.decode("ascii", "replace")
        if equals and SYSFS_ATTRIBUTE.match(text):
            target = parsed.interface if text.startswith("bInterface") else parsed.device
            target.setdefault(text, value)
    return parsed


@dataclass
class Uevent:
    """A uevent as pyudev hands it to the watcher, over a sysfs mounted at `sys_root`. Like
    pyudev, a field is decoded only when it is read, strictly, in the file system encoding, so
    a field that is not text raises UnicodeDecodeError right there. DEVNAME gets the /dev prefix
    and the sysfs name is DEVPATH's last part, as libudev derives them."""

    properties: dict[str, bytes]
    sys_root: Path

    def _text(self, key: str) -> str | None:
        value = self.properties.get(key)
        return None if value is None else ensure_unicode_string(value)

    @property
    def action(self) -> str | None:
        return self._text("ACTION")

    @property
    def subsystem(self) -> str | None:
        return self._text("SUBSYSTEM")

    @property
    def device_path(self) -> str:
        return ensure_unicode_string(self.properties["DEVPATH"])

    @property
    def sys_path(self) -> str:
        return ensure_unicode_string(os.fsencode(self.sys_root) + self.properties["DEVPATH"])

    @property
    def sys_name(self) -> str:
        name = self.properties["DEVPATH"].rsplit(b"/", 1)[-1]
        return ensure_unicode_string(name).replace("!", "/")

    @property
    def device_node(self) -> str | None:
        name = self._text("DEVNAME")
        if not name:
            return None
        return name if name.startswith("/") else f"/dev/{name}"


@dataclass
class ScriptedMonitor:
    """The watcher's pyudev Monitor: `poll(timeout=0)` hands out the events, then None."""

    events: list[Uevent]

    def poll(self, timeout: float | None = None) -> Uevent | None:
        assert timeout == 0  # the watcher drains without blocking the event loop
        return self.events.pop(0) if self.events else None


@dataclass
class UeventReports:
    """What the watcher told its owner."""

    added: list[FoundPrinter] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    usb_changes: int = 0
    overflows: int = 0

    def usb_changed(self) -> None:
        self.usb_changes += 1

    def overflowed(self) -> None:
        self.overflows += 1


def write_attributes(directory: Path, attributes: dict[str, bytes]) -> dict[str, bytes]:
    """Attributes written as sysfs shows them (one line); returns those written (a name that
    is a directory of the device's path cannot be an attribute too)."""
    written = {}
    for name, value in attributes.items():
        if not (directory / name).is_dir():
            (directory / name).write_bytes(value + b"\n")
            written[name] = value
    return written


def build_uevent_sysfs(sys_root: Path, event: UeventInput) -> tuple[Path, dict[str, bytes]]:
    """The directory DEVPATH names, with the interface two levels up and the USB device above
    it (…/1-1/1-1:1.0/usbmisc/lp0); returns it and the device attributes written."""
    node = sys_root / os.fsdecode(event.properties["DEVPATH"].lstrip(b"/"))
    node.mkdir(parents=True)
    ancestors = [node, *node.parents]
    depth = len(node.relative_to(sys_root).parts)
    device = write_attributes(ancestors[min(3, depth - 1)], event.device)
    write_attributes(ancestors[min(2, depth - 1)], event.interface)
    return node, device


def expected_reports(uevent: Uevent, node: Path,
                     device_attrs: dict[str, bytes]) -> tuple[list[FoundPrinter], list[str], int]:
    """What the watcher should report for one event (added, removed, USB changes), worked out
    from the event: an lp add reports exactly the identity sysfs gives (nothing when the IDs are
    missing), an lp remove its DEVPATH, any other usb event a change; an event with a field the
    watcher reads that is not text is skipped."""
    try:
        action, subsystem = uevent.action, uevent.subsystem
        devpath, name = uevent.device_path, uevent.sys_name
    except UnicodeDecodeError:
        return [], [], 0
    lp = subsystem == "usbmisc" and name.startswith("lp")
    if lp and action == "add":
        identity = check_sysfs_identity(node, device_attrs)
        if identity is None:
            return [], [], 0
        try:
            device_node = uevent.device_node or f"/dev/usb/{name}"
        except UnicodeDecodeError:
            return [], [], 0
        return [FoundPrinter(devpath, device_node, identity)], [], 0
    if lp:
        return [], [devpath] if action == "remove" else [], 0
    return [], [], 1 if subsystem == "usb" else 0


def check_uevent(root: Path, event: UeventInput) -> UeventReports | None:
    """Whatever a uevent says, the watcher's drain (the daemon's reader callback) raises
    nothing and goes on to the next event; it reports what `expected_reports` says; sysfs is
    only read; and a printer it reports is saved by autoadd so that it is recognised after a
    replug. `root` is an empty directory; None when no such device can exist (path too long)."""
    sys_root = root / "sys"
    try:
        node, device_attrs = build_uevent_sysfs(sys_root, event)
    except OSError:
        return None
    uevent = Uevent(event.properties, sys_root)
    sysfs_before = tree(sys_root)

    reports = UeventReports()
    watcher = UdevWatcher(reports.added.append, reports.removed.append, reports.usb_changed,
                          reports.overflowed)
    following = Uevent({"ACTION": b"remove", "SUBSYSTEM": b"usbmisc", "DEVPATH": NEXT_LP},
                       sys_root)
    watcher.monitor = ScriptedMonitor([uevent, following])
    watcher._drain()
    assert reports.removed[-1:] == [NEXT_LP.decode()], "the event after it was not handled"
    del reports.removed[-1]

    expected = expected_reports(uevent, node, device_attrs)
    assert (reports.added, reports.removed, reports.usb_changes) == expected
    assert reports.overflows == 0
    assert tree(sys_root) == sysfs_before, "sysfs is only read"
    for found in reports.added:
        identity = found.identity
        if (KERNEL_ID.match(identity.vid) and KERNEL_ID.match(identity.pid)
                and KERNEL_NAME.match(identity.usb_path)):
            config = root / "config"
            config.mkdir()
            check_saved_printer_is_recognised(config, identity, {})
    return reports


# --- the UCI text format and the file store ------------------------------------------------------


def check_uci_text(text: str, source: str = "fuzz.conf") -> list[UciSection] | None:
    """Any text is read into named, typed sections or refused with a UciError that says where."""
    try:
        sections = parse_sections(text, source)
    except UciError as err:
        assert str(err).startswith(source)
        return None
    for section in sections:
        assert section.name and section.type
        assert all(value != "" for value in section.options.values())
    return sections


def check_document_keeps_text(text: str) -> None:
    """Text that reads is kept byte for byte by a document (comments, layout and all)."""
    try:
        document = UciDocument(text)
    except UciError:
        return
    assert document.text() == text
    assert parse_sections(document.text()) == document.sections


def check_file_store_reads(path: Path, data: bytes) -> None:
    """The file store reads any bytes or refuses them with a UciError naming the file, and
    reading never changes the file."""
    path.write_bytes(data)
    try:
        FileStore(path).load()
    except UciError as err:
        assert str(path) in str(err)
    assert path.read_bytes() == data


@dataclass
class EditModel:
    """What a list of changes means, written independently of the store."""

    sections: list[UciSection] = field(default_factory=list)

    def find(self, wanted: str) -> int | None:
        match = re.fullmatch(r"@(.+)\[(-?\d+)\]", wanted)
        if match:
            of_type = [i for i, s in enumerate(self.sections) if s.type == match[1]]
            try:
                return of_type[int(match[2])]
            except IndexError:
                return None
        return next((i for i, s in enumerate(self.sections)
                     if not s.anonymous and s.name == wanted), None)

    def apply(self, change: UciChange) -> None:
        if isinstance(change, AddSection):
            index = self.find(change.name) if change.name else None
            if index is not None:
                if self.sections[index].type != change.type:
                    raise UciError("type clash")
                return
            self.sections.append(UciSection(change.type, change.name, {},
                                            anonymous=not change.name))
        elif isinstance(change, DeleteSection):
            index = self.find(change.name)
            if index is not None:
                del self.sections[index]
        else:
            index = self.find(change.section)
            if index is None:
                if isinstance(change, DeleteOption):
                    return
                raise UciError("no such section")
            options = self.sections[index].options
            if isinstance(change, DeleteOption) or change.value in ("", []):
                options.pop(change.option, None)
            else:
                options[change.option] = change.value
        self.rename()

    def rename(self) -> None:
        counts: dict[str, int] = {}
        for section in self.sections:
            index = counts.get(section.type, 0)
            counts[section.type] = index + 1
            if section.anonymous:
                section.name = f"@{section.type}[{index}]"


def check_edit(path: Path, text: str, batch: Sequence[UciChange]) -> None:
    """The file store applies a batch exactly as the model says (or refuses it as a whole and
    writes nothing), and the owner's comments survive unless a section was deleted."""
    path.write_bytes(text.encode())  # bytes: reading text would turn a lone CR into LF
    model = EditModel(parse_sections(text))
    try:
        for change in batch:
            model.apply(change)
    except UciError:
        expected = None  # the batch is refused as a whole
    else:
        expected = model.sections
    try:
        FileStore(path).apply(list(batch))
    except UciError:
        assert expected is None, "the store refused a batch the model accepts"
        assert path.read_bytes() == text.encode(), "a refused batch wrote nothing"
        return
    assert expected is not None, "the store accepted a batch the model refuses"
    assert FileStore(path).load() == expected
    if any(isinstance(change, DeleteSection) for change in batch):
        return
    edits_options = any(isinstance(change, SetOption | DeleteOption) for change in batch)
    kept = path.read_bytes().decode()
    for comment, trailing in comments(text):
        # A comment after a statement may go with it (a deleted option, a repeated one).
        if not (trailing and edits_options):
            assert comment in kept, comment


def comments(text: str, limit: int = 16) -> list[tuple[str, bool]]:
    """The comments of UCI text, each with whether it trails a statement, found without the
    scanner: '#' to the end of its line is a comment when the text up to that line reads the
    same with it cut out (a '#' in a quoted value, even one spanning lines or overridden by a
    later statement, cannot be cut). Only the first `limit` lines with a '#' are looked at."""
    lines = text.split("\n")
    found = []
    for n in [n for n, line in enumerate(lines) if "#" in line][:limit]:
        head, line = lines[:n], lines[n]
        cut = line.index("#")
        try:
            if (parse_sections("\n".join([*head, line]))
                    != parse_sections("\n".join([*head, line[:cut]]))):
                continue
        except UciError:
            continue
        continued = bool(head) and head[-1].endswith("\\")  # the line joins the one before
        found.append((line[cut:], continued or bool(line[:cut].strip(" \t\r\f\v"))))
    return found


def check_p910nd_import(p910nd: Sequence[UciSection]) -> None:
    """Any p910nd sections give an import plan; once its changes are written, importing the
    same file again adds nothing (or the store refuses text UCI cannot hold, writing nothing)."""
    plan = plan_import(p910nd, [])
    assert len(plan.imported) == sum(c.__class__ is AddSection for c in plan.changes)
    document = UciDocument("")
    try:
        document.apply(plan.changes)
    except UciError:
        return
    again = plan_import(p910nd, document.sections)
    assert again.imported == [], (plan.changes, again.changes)


# --- the schema: config files and web forms ------------------------------------------------------


def check_config(raw: Sequence[UciSection]) -> Config:
    """Any sections give a config whose invariants hold (ports, clashes, ranges, auth)."""
    config = parse_config(raw)
    assert isinstance(config, Config)
    # Every printer section becomes exactly one printer, in file order.
    assert [p.section for p in config.printers] == [s.name for s in raw if s.type == PRINTER_TYPE]
    for printer in config.printers:
        assert 10 <= printer.port <= 65535  # 0-9 were turned into 9100-9109
        for problem in printer.problems:
            option = problem.split(":", 1)[0]
            assert any(i.section == printer.section and i.option == option for i in config.issues)
    served = [p for p in config.printers if p.enabled and p.valid]
    for n, first in enumerate(served):
        for second in served[n + 1:]:
            assert not (first.port == second.port and binds_overlap(first.bind, second.bind))
    s = config.settings
    assert 0 <= s.queue_limit <= 1000 and 1 <= s.base_port <= 65535 and 0 <= s.web_port <= 65535
    assert 0 <= s.idle_timeout <= 86400 and 0 <= s.drain_grace <= 86400
    assert s.auth in ("rpcd", "password", "none") and s.log_level in ("debug", "info", "warning",
                                                                      "error")
    if s.auth == "none" and s.web_port:
        assert s.web_listen and re.match(r"^(127\.|::1$)", s.web_listen)
    return config


def written_printer(printer: PrinterSettings) -> UciSection:
    """The section FileStore/PyUciStore would hold after saving `printer` in full."""
    return UciSection(PRINTER_TYPE, printer.section,
                      {c.option: c.value for c in printer_changes(printer)})


def check_printers_read_back(raw: Sequence[UciSection]) -> None:
    """Every accepted printer survives being written and read back unchanged."""
    for printer in parse_config(raw).printers:
        if not printer.valid:
            continue
        assert parse_config([written_printer(printer)]).printer(printer.section) == printer
        # Booleans are written explicitly, never left out for being the default.
        options = written_printer(printer).options
        assert {options[f] for f in ("enabled", "bidirectional", "mdns")} <= {"0", "1"}


def check_settings_read_back(raw: Sequence[UciSection]) -> None:
    """The global settings any sections give survive being written and read back."""
    settings = parse_config(raw).settings
    written = {f.name: format_value(getattr(settings, f.name)) for f in fields(GlobalSettings)}
    assert parse_config([UciSection(GLOBAL_TYPE, "main", written)]).settings == settings


def check_printer_form(raw: Sequence[UciSection], section: str, form: dict[str, str]) -> str:
    """A printer form is refused per field, or what it sets is storable, the edited printer
    stays valid after the reload that follows the save, and no other printer loses its port.
    Returns what happened (for hypothesis' statistics)."""
    names = [s.name for s in raw if s.type == PRINTER_TYPE]
    config = parse_config(raw)
    values, errors = validate_printer_form(config, section, form)
    assert set(errors) <= set(form) | {"section", "port"}
    base = config.printer(section)
    if errors or base is None or not base.valid:
        return "form refused or printer already invalid"
    if len(set(names)) != len(names):
        return "sections declared twice"  # the stores merge them, as libuci does
    for option, value in values.items():  # what validation accepts, the store can write
        check_value(format_value(value), option)
    saved = [
        replace(s, options={**s.options, **{k: format_value(v) for k, v in values.items()}})
        if s.type == PRINTER_TYPE and s.name == section else s
        for s in raw
    ]
    after = parse_config(saved)
    edited = after.printer(section)
    assert edited is not None and edited.valid, edited
    assert replace(edited, problems=()) == replace(base, **values)
    for before in config.printers:
        if before.valid and before.section != section:
            assert after.printer(before.section).valid
    return "form accepted"


def check_settings_form(form: dict[str, str]) -> None:
    """A settings form is refused per field, or gives storable settings that read back."""
    values, errors = validate_global_form(form)
    assert set(errors) <= set(form)
    assert set(values) <= set(GLOBAL_PARSERS)
    if errors:
        return
    written = {k: format_value(v) for k, v in values.items()}
    for option, text in written.items():  # what validation accepts, the store can write
        check_value(text, option)
    reread = parse_config([UciSection(GLOBAL_TYPE, "main", written)])
    if not any(i.option == "auth" for i in reread.issues):
        assert reread.settings == replace(GlobalSettings(), **values)


# --- uploaded firmware file names ----------------------------------------------------------------


def check_safe_name(name: str) -> str | None:
    """A name becomes one plain, visible, stable file name, or is refused with a 400."""
    try:
        cleaned = safe_name(name)
    except FirmwareError as err:
        assert err.status == 400
        return None
    assert re.fullmatch(r"[A-Za-z0-9._-]+", cleaned)
    assert not cleaned.startswith(".") and cleaned not in (".", "..")
    assert len(cleaned) <= MAX_NAME_LENGTH
    assert safe_name(cleaned) == cleaned  # stable: the listed name is the name to delete
    return cleaned


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below `root`: file contents, or the target of a symlink."""
    result: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            key = str(path.relative_to(root))
            if path.is_symlink():
                result[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                result[key] = path.read_bytes()
    return result


def changed_entries(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> set[str]:
    """The entries two `tree`s differ in: added, removed or changed."""
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def firmware_layout(root: Path) -> Path:
    """firmware_dir with a subdirectory and a symlink pointing outside, next to files that
    must never change."""
    firmware = root / "etc" / "firmware"
    (firmware / "sub").mkdir(parents=True)
    (root / "outside.bin").write_bytes(b"precious")
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0")
    (firmware / "link").symlink_to(root / "outside.bin")
    (firmware / "existing.dl").write_bytes(b"old blob")
    return firmware


def check_firmware_save(root: Path, name: str) -> None:
    """Saving under any name writes exactly one plain file directly inside firmware_dir, or
    nothing at all. `root` holds a fresh `firmware_layout`."""
    firmware = root / "etc" / "firmware"
    before = tree(root)
    try:
        blob = FirmwareStore(firmware).save(name, io.BytesIO(b"new blob"), len(b"new blob"))
    except FirmwareError as err:
        if err.status == 409:
            assert safe_name(name) == "sub"  # an existing directory is not replaced
        assert tree(root) == before
        return
    after = tree(root)
    written = f"etc/firmware/{blob.name}"
    assert (firmware / blob.name).read_bytes() == b"new blob"
    assert not (firmware / blob.name).is_symlink()
    changed = changed_entries(before, after)
    assert changed == {written}, changed
    assert after["outside.bin"] == b"precious" and after["etc/passwd"] == b"root:x:0:0"


def check_firmware_delete(root: Path, name: str) -> None:
    """Deleting under any name removes at most one plain file inside firmware_dir. `root`
    holds a fresh `firmware_layout`."""
    firmware = root / "etc" / "firmware"
    before = tree(root)
    try:
        FirmwareStore(firmware).delete(name)
    except FirmwareError as err:
        assert err.status in (400, 404)
        assert tree(root) == before
        return
    after = tree(root)
    assert set(before) - set(after) == {f"etc/firmware/{safe_name(name)}"}
    assert set(after) <= set(before) and after["outside.bin"] == b"precious"
