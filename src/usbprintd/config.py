"""The UCI schema: typed settings, validation with clear messages, and explicit serialisation.

A bad value disables only what it touches: a bad printer option marks that printer invalid (it is
not served, the message says why), a bad global option falls back to its default. Unknown
sections and options are reported as warnings and left in the file untouched.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from usbprintd.uci import OptionValue, SetOption, UciChange, UciSection

log = logging.getLogger(__name__)

GLOBAL_TYPE = "usbprintd"
GLOBAL_NAME = "main"
PRINTER_TYPE = "printer"
LOG_LEVELS = ("debug", "info", "warning", "error")
AUTH_MODES = ("rpcd", "password", "none")
P910ND_BASE_PORT = 9100

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}
_USB_ID = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
_SECTION_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class InvalidValue(ValueError):
    """A single option's value is not acceptable; the message is shown to the owner."""


@dataclass(frozen=True)
class ConfigIssue:
    section: str
    option: str | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = f"{self.section}.{self.option}" if self.option else self.section
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class GlobalSettings:
    autoadd: bool = True
    base_port: int = 9100
    queue_limit: int = 8
    idle_timeout: float = 300.0
    drain_grace: float = 2.0
    firmware_dir: str = "/etc/usbprintd/firmware"
    web_listen: str = "0.0.0.0"
    web_port: int = 631
    auth: str = "rpcd"
    password_hash: str = ""
    mdns: bool = True
    log_level: str = "info"


@dataclass(frozen=True)
class PrinterSettings:
    section: str
    enabled: bool = True
    name: str = ""
    usb_id: str = ""
    serial: str = ""
    usb_path: str = ""
    device: str = ""
    port: int = 9100
    bind: str = ""
    bidirectional: bool = False
    firmware: str = ""
    mdns: bool = True
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def display_name(self) -> str:
        return self.name or self.section


@dataclass(frozen=True)
class Config:
    settings: GlobalSettings = field(default_factory=GlobalSettings)
    printers: tuple[PrinterSettings, ...] = ()
    issues: tuple[ConfigIssue, ...] = ()

    def printer(self, section: str) -> PrinterSettings | None:
        return next((p for p in self.printers if p.section == section), None)


# --- value parsers: each raises InvalidValue with a message meant for the owner ---------------


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidValue(f"'{text}' is not a boolean (use 0 or 1)")


def _parse_int(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidValue(f"'{text}' is not a whole number") from None
    if not low <= value <= high:
        raise InvalidValue(f"{what} {value} is out of range ({low}-{high})")
    return value


def parse_port(text: str) -> int:
    """A TCP port; 0-9 mean 9100-9109 as in p910nd's configuration."""
    value = _parse_int(text, 0, 65535, "port")
    return P910ND_BASE_PORT + value if value <= 9 else value


def parse_seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidValue(f"'{text}' is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise InvalidValue(f"{value} seconds is out of range (0-86400)")
    return value


def parse_address(text: str) -> str:
    """A listen address: empty for all addresses (IPv4 and IPv6) or one IP address."""
    value = text.strip()
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidValue(f"'{text}' is not an IP address") from None


def parse_usb_id(text: str) -> str:
    value = text.strip().lower()
    if value and not _USB_ID.match(value):
        raise InvalidValue(f"'{text}' is not a USB id of the form vvvv:pppp")
    return value


def parse_file_name(text: str) -> str:
    value = text.strip()
    if value and (value in {".", ".."} or "/" in value or "\0" in value):
        raise InvalidValue(f"'{text}' must be a plain file name, not a path")
    return value


def _choice(options: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(options)

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise InvalidValue(f"'{text}' is not one of {', '.join(allowed)}")
        return value

    return parse


def _text(text: str) -> str:
    return text.strip()


GLOBAL_PARSERS: dict[str, Callable[[str], Any]] = {
    "autoadd": parse_bool,
    "base_port": lambda t: _parse_int(t, 1, 65535, "port"),
    "queue_limit": lambda t: _parse_int(t, 0, 1000, "queue limit"),
    "idle_timeout": parse_seconds,
    "drain_grace": parse_seconds,
    "firmware_dir": _text,
    "web_listen": parse_address,
    "web_port": lambda t: _parse_int(t, 0, 65535, "port"),
    "auth": _choice(AUTH_MODES),
    "password_hash": _text,
    "mdns": parse_bool,
    "log_level": _choice(LOG_LEVELS),
}

PRINTER_PARSERS: dict[str, Callable[[str], Any]] = {
    "enabled": parse_bool,
    "name": _text,
    "usb_id": parse_usb_id,
    "serial": _text,
    "usb_path": _text,
    "device": _text,
    "port": parse_port,
    "bind": parse_address,
    "bidirectional": parse_bool,
    "firmware": parse_file_name,
    "mdns": parse_bool,
}


def _scalar(value: OptionValue) -> str:
    return value[-1] if isinstance(value, list) and value else str(value or "")


def _parse_options(
    section: UciSection,
    parsers: dict[str, Callable[[str], Any]],
    issues: list[ConfigIssue],
) -> tuple[dict[str, Any], list[str]]:
    """Parse the known options of a section; returns the good values and the bad options' errors."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for option, raw in section.options.items():
        parser = parsers.get(option)
        if parser is None:
            issues.append(ConfigIssue(section.name, option, "unknown option (kept)", "warning"))
            continue
        try:
            values[option] = parser(_scalar(raw))
        except InvalidValue as err:
            issues.append(ConfigIssue(section.name, option, str(err)))
            problems.append(f"{option}: {err}")
    return values, problems


def parse_config(sections: Iterable[UciSection]) -> Config:
    """Turn raw UCI sections into validated settings plus the list of everything that was wrong."""
    issues: list[ConfigIssue] = []
    settings = GlobalSettings()
    printers: list[PrinterSettings] = []
    seen_global = False
    for section in sections:
        if section.type == GLOBAL_TYPE:
            if seen_global:
                issues.append(ConfigIssue(section.name, None, "second global section ignored"))
                continue
            seen_global = True
            values, _ = _parse_options(section, GLOBAL_PARSERS, issues)
            settings = replace(settings, **values)
        elif section.type == PRINTER_TYPE:
            values, problems = _parse_options(section, PRINTER_PARSERS, issues)
            printers.append(
                PrinterSettings(section=section.name, **values, problems=tuple(problems))
            )
        else:
            issues.append(
                ConfigIssue(section.name, None, f"unknown section type '{section.type}' (kept)",
                            "warning")
            )
    printers = _reject_port_clashes(printers, issues)
    printers = _reject_web_port(printers, settings, issues)
    if settings.auth == "none" and not _is_loopback(settings.web_listen) and settings.web_port:
        issues.append(ConfigIssue(GLOBAL_NAME, "auth",
                                  "'none' is only allowed when web_listen is a loopback address; "
                                  "using 'password'"))
        settings = replace(settings, auth="password")
    return Config(settings=settings, printers=tuple(printers), issues=tuple(issues))


def _is_loopback(address: str) -> bool:
    return bool(address) and ipaddress.ip_address(address).is_loopback


def binds_overlap(a: str, b: str) -> bool:
    """Two listen addresses clash on one port when one covers the other: '' and '::' are every
    address (a '::' socket is dual-stack), '0.0.0.0' is every IPv4 address."""
    first, second = _listen_address(a), _listen_address(b)
    if first is None or second is None or first == second:
        return True
    if isinstance(first, str) or isinstance(second, str):
        return False  # not an address (unvalidated input): only equal text clashes
    return first.version == second.version == 4 and (first.is_unspecified
                                                     or second.is_unspecified)


def _listen_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str | None:
    """None for every address; IPv4-mapped IPv6 addresses as the IPv4 address they are."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_unspecified:
            return None
        return address.ipv4_mapped or address
    return address


def _clash(a: PrinterSettings, b: PrinterSettings) -> bool:
    return a.port == b.port and binds_overlap(a.bind, b.bind)


def _reject_port_clashes(
    printers: list[PrinterSettings], issues: list[ConfigIssue]
) -> list[PrinterSettings]:
    """The first enabled printer on a port keeps it; later ones that clash are marked invalid."""
    result: list[PrinterSettings] = []
    taken: list[PrinterSettings] = []
    for printer in printers:
        if printer.enabled and printer.valid:
            owner = next((t for t in taken if _clash(t, printer)), None)
            if owner is not None:
                message = f"port {printer.port} is already used by '{owner.section}'"
                issues.append(ConfigIssue(printer.section, "port", message))
                printer = replace(printer, problems=(*printer.problems, f"port: {message}"))
            else:
                taken.append(printer)
        result.append(printer)
    return result


def uses_web_port(printer: PrinterSettings, settings: GlobalSettings) -> bool:
    return (settings.web_port != 0 and printer.port == settings.web_port
            and binds_overlap(printer.bind, settings.web_listen))


def _web_port_message(settings: GlobalSettings) -> str:
    return f"port {settings.web_port} is the web page's (web_port)"


def _reject_web_port(printers: list[PrinterSettings], settings: GlobalSettings,
                     issues: list[ConfigIssue]) -> list[PrinterSettings]:
    """The web page keeps its port: it is where the owner fixes the clash."""
    result = []
    for printer in printers:
        if printer.enabled and printer.valid and uses_web_port(printer, settings):
            message = _web_port_message(settings)
            issues.append(ConfigIssue(printer.section, "port", message))
            printer = replace(printer, problems=(*printer.problems, f"port: {message}"))
        result.append(printer)
    return result


def web_port_errors(current: Config, values: dict[str, Any]) -> dict[str, str]:
    """A settings edit that would move the web page onto an enabled printer's port."""
    settings = replace(current.settings, **values)
    for printer in current.printers:
        if printer.enabled and printer.valid and uses_web_port(printer, settings):
            field = "web_port" if "web_port" in values else "web_listen"
            return {field: f"port {settings.web_port} is used by '{printer.display_name}'"}
    return {}


# --- writing -------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """UCI text for a setting; booleans are always explicit 0/1 (never deleted for a default)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def printer_changes(printer: PrinterSettings, only: Iterable[str] | None = None) -> list[UciChange]:
    """The UCI writes that store `printer` (all options, or only the named ones)."""
    names = set(only) if only is not None else set(PRINTER_PARSERS)
    return [
        SetOption(printer.section, f.name, format_value(getattr(printer, f.name)))
        for f in fields(PrinterSettings)
        if f.name in names and f.name in PRINTER_PARSERS
    ]


def validate_printer_form(
    current: Config, section: str, form: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a printer edit; returns (parsed values, per-option errors) without changing anything.

    Port clashes are checked against the other printers of `current`.
    """
    values, errors = _parse_form(form, PRINTER_PARSERS)
    base = current.printer(section)
    if base is None:
        errors["section"] = f"no printer '{section}'"
        return values, errors
    candidate = replace(base, **values)
    if candidate.enabled and "port" not in errors:
        for other in current.printers:
            if other.section != section and other.enabled and other.valid and _clash(other,
                                                                                     candidate):
                errors["port"] = f"port {candidate.port} is already used by '{other.display_name}'"
        if uses_web_port(candidate, current.settings):
            errors["port"] = _web_port_message(current.settings)
    return values, errors


def validate_global_form(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    return _parse_form(form, GLOBAL_PARSERS)


def _parse_form(
    form: dict[str, str], parsers: dict[str, Callable[[str], Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse an owner's edit; every bad field gets its own message."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for option, raw in form.items():
        parser = parsers.get(option)
        if parser is None:
            errors[option] = "unknown setting"
            continue
        if any(ord(c) < 32 and c != "\t" for c in raw):  # UCI cannot store them
            errors[option] = "must not contain line breaks or control characters"
            continue
        try:
            values[option] = parser(raw)
        except InvalidValue as err:
            errors[option] = str(err)
    return values, errors


def section_name_for(label: str, taken: Iterable[str]) -> str:
    """A readable, unique UCI section name derived from a printer's name ('hp_laserjet_1018')."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "printer"
    if not _SECTION_NAME.match(base) or base[0].isdigit():
        base = f"printer_{base}"
    existing = set(taken)
    name, n = base, 2
    while name in existing:
        name, n = f"{base}_{n}", n + 1
    return name


def next_free_port(config: Config) -> int:
    used = {p.port for p in config.printers} | {config.settings.web_port}
    port = config.settings.base_port
    while port in used:
        port += 1
    return port
