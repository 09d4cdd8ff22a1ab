"""Import printers from OpenWrt's p910nd configuration (/etc/config/p910nd).

Each `config p910nd` section becomes one `printer` section with explicit values, read the way
p910nd's init script reads them: a boolean that is missing means 0 (LuCI deletes options equal
to its defaults, so a missing `enabled` is common and p910nd then never started), `port` 0-9
means 9100+n. Everything that has no equivalent is reported, never silently lost. Importing
twice adds nothing the second time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from usbprintd.config import (
    PRINTER_TYPE,
    InvalidValue,
    PrinterSettings,
    binds_overlap,
    parse_address,
    parse_bool,
    parse_config,
    parse_file_name,
    parse_port,
    parse_usb_id,
    printer_changes,
    section_name_for,
)
from usbprintd.uci import AddSection, ConfigStore, FileStore, UciChange, UciError, UciSection

P910ND_TYPE = "p910nd"
HOTPLUG_TYPE = "hotplug"
DEFAULT_DRIVER_HOME = "/opt/p910nd_drivers"  # p910nd's hotplug script default
PLACEHOLDER_MODEL = "My Printer Manufacturer/Model"  # mdns_ty of the shipped default config

# What p910nd's init script assumes when a boolean option is absent.
P910ND_FLAG_DEFAULTS = {"enabled": False, "bidirectional": False, "mdns": False,
                        "runas_root": False}
MDNS_TXT_OPTIONS = ("mdns_ty", "mdns_note", "mdns_product", "mdns_mfg", "mdns_mdl", "mdns_cmd",
                    "mdns_cid", "mdns_cls", "mdns_cmt", "mdns_des", "mdns_drv", "mdns_sn",
                    "mdns_ver")
MAPPED_OPTIONS = {"enabled", "device", "port", "bind", "bidirectional", "mdns", "runas_root",
                  "usbvidpid", "driver_file"}

_VIDPID = re.compile(r"\s*([0-9a-fA-F]{1,4})\s*[/:]\s*([0-9a-fA-F]{1,4})\s*\Z")


@dataclass(frozen=True)
class ImportPlan:
    changes: list[UciChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the owner, one line each
    imported: list[str] = field(default_factory=list)  # names of the new printer sections


@dataclass
class _Translation:
    printer: PrinterSettings | None
    details: list[str] = field(default_factory=list)


def plan_import(p910nd: Sequence[UciSection], current: Sequence[UciSection]) -> ImportPlan:
    """The UCI changes that add the printers of a p910nd config to the usbprintd sections
    `current`, and notes saying what was mapped, changed or dropped. Pure: reads nothing else."""
    printers = list(parse_config(current).printers)
    taken = {section.name for section in current}
    driver_home = _driver_home(p910nd)
    plan = ImportPlan()
    for section in p910nd:
        label = f"p910nd section '{section.name}'"
        if section.type == HOTPLUG_TYPE:
            continue
        if section.type != P910ND_TYPE:
            plan.notes.append(f"{label}: type '{section.type}' is not a printer; ignored")
            continue
        translation = _translate(section, driver_home)
        printer = translation.printer
        if printer is None:
            plan.notes.extend([f"{label}: skipped", *_indent(translation.details)])
            continue
        existing = _same_printer(printer, printers)
        if existing is not None:
            plan.notes.append(f"{label}: already imported as printer '{existing.section}'; "
                              "skipped")
            continue
        printer = _resolve_port_clash(printer, printers, translation.details)
        name = section_name_for(printer.name, taken)
        printer = replace(printer, section=name)
        taken.add(name)
        printers.append(printer)
        plan.changes.append(AddSection(PRINTER_TYPE, name))
        plan.changes.extend(printer_changes(printer))
        plan.imported.append(name)
        state = "enabled" if printer.enabled else "disabled"
        plan.notes.append(f"{label} -> printer '{name}' \"{printer.name}\" on port "
                          f"{printer.port}, {state}")
        plan.notes.extend(_indent(translation.details))
    if any(p.enabled for p in printers if p.section in plan.imported):
        plan.notes.append("stop p910nd before usbprintd serves the same ports: "
                          "/etc/init.d/p910nd stop; /etc/init.d/p910nd disable")
    return plan


def _translate(section: UciSection, driver_home: str) -> _Translation:
    """One p910nd section as printer settings (section name not yet chosen), with notes."""
    options = {key: _text(value) for key, value in section.options.items()}
    details: list[str] = []
    device = options.get("device", "").strip()
    if not device:
        return _Translation(None, ["no device is set"])
    raw_port = options.get("port", "0")
    try:
        port = parse_port(raw_port)
    except InvalidValue as err:
        return _Translation(None, [f"port: {err}"])
    enabled = _flag(options, "enabled", details)
    if "enabled" not in options:
        details.append("'enabled' was not set, which p910nd reads as off: imported disabled "
                       "(some LuCI versions removed the option when the box was ticked; "
                       "enable the printer on the web page if it was meant to be on)")
    bind = options.get("bind", "")
    try:
        bind = parse_address(bind)
    except InvalidValue as err:
        details.append(f"bind: {err}; imported disabled, set the address on the web page")
        bind, enabled = "", False
    usb_id = _usb_id(options.get("usbvidpid", ""), details)
    if usb_id:
        details.append(f"found by its USB id {usb_id} wherever it is plugged in; "
                       f"device {device} is not pinned")
    printer = PrinterSettings(
        section="",
        enabled=enabled,
        name=_printer_name(options, device),
        usb_id=usb_id,
        device="" if usb_id else device,
        port=port,
        bind=bind,
        bidirectional=_flag(options, "bidirectional", details),
        firmware=_firmware(options.get("driver_file", ""), driver_home, details),
        mdns=_flag(options, "mdns", details),
    )
    if "port" not in options:
        details.append(f"port was not set: {port}, as in p910nd")
    elif raw_port.strip() != str(port):
        details.append(f"port {raw_port.strip()} is TCP port {port}")
    if _flag(options, "runas_root", details):
        details.append("runas_root dropped: the usbprintd service decides which user it runs as")
    details += _unmapped(options, printer.name)
    return _Translation(printer, details)


def run_import(source_path: str | os.PathLike[str], store: ConfigStore) -> list[str]:
    """`usbprintd import-p910nd`: read the p910nd UCI file `source_path`, add its printers to
    `store` with one `store.apply()` and return the notes to print, one line each.

    Raises UciError when the source is missing or unreadable, or the store cannot be read or
    written (nothing is written then).
    """
    path = os.fspath(source_path)
    if not os.path.isfile(path):
        raise UciError(f"{path}: no such file")
    plan = plan_import(FileStore(path).load(), store.load())
    if plan.changes:
        store.apply(plan.changes)
    count = len(plan.imported)
    summary = (f"imported {count} printer{'s' if count != 1 else ''} into {store.description}"
               if count else f"nothing to import from {path}")
    return [*plan.notes, summary]


# --- helpers ---------------------------------------------------------------------------------


def _text(value: str | list[str]) -> str:
    """p910nd has no list options; LuCI stores mdns_cmd as one comma-joined string."""
    return ",".join(value) if isinstance(value, list) else value


def _indent(lines: list[str]) -> list[str]:
    return [f"  - {line}" for line in lines]


def _driver_home(sections: Sequence[UciSection]) -> str:
    hotplug = next((s for s in sections if s.type == HOTPLUG_TYPE), None)
    home = _text(hotplug.options.get("driver_home", "")) if hotplug else ""
    return home.strip() or DEFAULT_DRIVER_HOME


def _flag(options: Mapping[str, str], key: str, details: list[str]) -> bool:
    default = P910ND_FLAG_DEFAULTS[key]
    raw = options.get(key)
    if raw is None:
        return default
    try:
        return parse_bool(raw)
    except InvalidValue as err:
        details.append(f"{key}: {err}; read as {int(default)} like p910nd")
        return default


def _usb_id(raw: str, details: list[str]) -> str:
    """p910nd's hotplug writes 'vvvv/pppp'; older scripts wrote '3f0/4117'."""
    if not raw.strip():
        return ""
    match = _VIDPID.match(raw)
    try:
        if match is None:
            raise InvalidValue(f"'{raw}' is not a USB id")
        return parse_usb_id(f"{int(match[1], 16):04x}:{int(match[2], 16):04x}")
    except InvalidValue as err:
        details.append(f"usbvidpid: {err}; dropped")
        return ""


def _firmware(driver_file: str, driver_home: str, details: list[str]) -> str:
    driver_file = driver_file.strip()
    if not driver_file:
        return ""
    path = driver_file if "/" in driver_file else os.path.join(driver_home, driver_file)
    try:
        name = parse_file_name(os.path.basename(path))
    except InvalidValue as err:
        details.append(f"driver_file: {err}; dropped")
        return ""
    details.append(f"firmware '{name}': copy {path} into usbprintd's firmware directory or "
                   "upload it on the web page (it is sent only when the printer lacks it)")
    return name


def _printer_name(options: Mapping[str, str], device: str) -> str:
    model = options.get("mdns_ty", "").strip()
    if model and model != PLACEHOLDER_MODEL:
        return model
    maker, mdl = options.get("mdns_mfg", "").strip(), options.get("mdns_mdl", "").strip()
    if mdl:
        return mdl if not maker or maker.lower() in mdl.lower() else f"{maker} {mdl}"
    product = options.get("mdns_product", "").strip().strip("()").strip()
    if product:
        return product
    return f"Printer on {os.path.basename(device)}"


def _unmapped(options: Mapping[str, str], name: str) -> list[str]:
    notes = []
    txt = [f"{key}='{options[key]}'" for key in MDNS_TXT_OPTIONS
           if options.get(key, "").strip() and not (key == "mdns_ty" and options[key] == name)]
    if txt:
        notes.append("mDNS TXT fields not imported (usbprintd announces what the printer "
                     f"reports in its IEEE 1284 ID): {', '.join(txt)}")
    other = sorted(set(options) - MAPPED_OPTIONS - set(MDNS_TXT_OPTIONS))
    if other:
        notes.append(f"options without an equivalent, dropped: {', '.join(other)}")
    return notes


def _same_printer(candidate: PrinterSettings, printers: Sequence[PrinterSettings]
                  ) -> PrinterSettings | None:
    """An earlier import (or autoadd) of this printer: same port and same USB id or device."""
    for printer in printers:
        if printer.port != candidate.port:
            continue
        if candidate.usb_id and printer.usb_id == candidate.usb_id:
            return printer
        if candidate.device and printer.device == candidate.device:
            return printer
    return None


def _resolve_port_clash(candidate: PrinterSettings, printers: Sequence[PrinterSettings],
                        details: list[str]) -> PrinterSettings:
    """Clients know p910nd's port, so it is kept; a clashing import starts disabled instead."""
    if not candidate.enabled:
        return candidate
    owner = next((p for p in printers if p.enabled and p.port == candidate.port
                  and binds_overlap(p.bind, candidate.bind)), None)
    if owner is None:
        return candidate
    details.append(f"port {candidate.port} is already used by printer '{owner.section}': "
                   "imported disabled")
    return replace(candidate, enabled=False)
