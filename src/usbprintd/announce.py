"""mDNS/DNS-SD: one `_pdl-datastream._tcp` service per served printer, so clients find it.

The records are built by pure functions from plain data (name, port, the printer's IEEE 1284
device ID). Two adapters publish them behind one small interface, `Announcer`:

- `UmdnsAnnouncer` on OpenWrt: writes the wanted set to /var/run/usbprintd/mdns.json and asks the
  init script to hand it to procd as the instance's mDNS service data, which umdns announces.
  The daemon keeps running; nothing is restarted.
- `ZeroconfAnnouncer` elsewhere (development machines): python-zeroconf, imported lazily.

`update(records)` always receives the full desired set and is idempotent, so callers never
track what was announced before.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from usbprintd.usb.ieee1284 import make_and_model, parse_device_id

if TYPE_CHECKING:
    from usbprintd.config import GlobalSettings
    from usbprintd.core import Core
    from usbprintd.registry import Registry

log = logging.getLogger(__name__)

SERVICE_TYPE = "_pdl-datastream._tcp"
MDNS_FILE = Path("/var/run/usbprintd/mdns.json")
INIT_SCRIPT = "/etc/init.d/usbprintd"
UMDNS_BINARY = "/usr/sbin/umdns"
DEFAULT_PRIORITY = 50
TXT_STRING_MAX = 255  # one TXT string: a length byte, then at most 255 bytes (RFC 6763 §6.1)
DNS_LABEL_MAX = 63  # the instance name is a single DNS label
REFRESH_DELAY_SECONDS = 0.2  # after a change, how soon the announced set is looked at again
PUBLISH_RETRY_SECONDS = 30.0  # after a failed publish (umdns restarting, ubus busy)
RAW_MIME_TYPE = "application/octet-stream"

# IEEE 1284 command-set tokens (CMD:) -> the MIME type a Bonjour `pdl` key lists for them.
# Host-based languages (ACL, ZJS, XQX, ESC/P, GDI...) have no registered type: raw bytes.
_PDL_BY_COMMAND: dict[str, str] = {
    "PCL": "application/vnd.hp-PCL",
    "PCL3": "application/vnd.hp-PCL",
    "PCL3GUI": "application/vnd.hp-PCL",
    "PCL5": "application/vnd.hp-PCL",
    "PCL5C": "application/vnd.hp-PCL",
    "PCL5E": "application/vnd.hp-PCL",
    "PCL6": "application/vnd.hp-PCL",
    "PCLXL": "application/vnd.hp-PCL",
    "PCL XL": "application/vnd.hp-PCL",
    "PCLM": "application/PCLm",
    "POSTSCRIPT": "application/postscript",
    "POSTSCRIPT2": "application/postscript",
    "POSTSCRIPT3": "application/postscript",
    "PS": "application/postscript",
    "BR-SCRIPT": "application/postscript",
    "BR-SCRIPT3": "application/postscript",
    "PDF": "application/pdf",
    "URF": "image/urf",
    "PWG": "image/pwg-raster",
    "PWGRASTER": "image/pwg-raster",
    "PWG_RASTER": "image/pwg-raster",
    "PWG-RASTER": "image/pwg-raster",
    "JPEG": "image/jpeg",
    "JPG": "image/jpeg",
}
# Job-control languages ride along with a PDL; they are not page description languages.
_NOT_A_PDL = frozenset(
    {"PJL", "PML", "MLC", "LEDM", "BIDI-ECP", "DW-PCL", "DESKJET", "DYN", "SCP", "1284.4"}
)

# --- records: pure functions ----------------------------------------------------------------


@dataclass(frozen=True)
class PrinterAnnouncement:
    """What the announcer needs to know about one served printer; no USB types involved."""

    name: str
    port: int
    hostname: str
    device_id: Mapping[str, str] = field(default_factory=dict)  # MFG, MDL, CMD, ... upper case
    admin_url: str = ""
    location: str = ""


@dataclass(frozen=True)
class ServiceRecord:
    """One DNS-SD service instance, ready to publish."""

    instance: str
    port: int
    txt: tuple[tuple[str, str], ...]
    service_type: str = SERVICE_TYPE

    @property
    def txt_strings(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.txt]

    @property
    def key(self) -> str:
        """A name for umdns' service table that changes whenever the content changes.

        umdns announces an entry when its key is new and sends a goodbye when the key goes
        away, but does not re-announce an entry whose content changed under the same key.
        """
        content = json.dumps([self.instance, self.service_type, self.port, self.txt])
        return f"usbprintd_{self.port}_{zlib.crc32(content.encode()):08x}"

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.instance, "type": self.service_type,
                "port": self.port, "txt": self.txt_strings}


def pdl_mime_types(command_set: str) -> tuple[str, ...]:
    """The `pdl` list for a 1284 CMD value such as 'PCL,PJL,POSTSCRIPT' (order kept, no repeats)."""
    types: list[str] = []
    for token in command_set.split(","):
        name = token.strip().upper()
        if not name or name in _NOT_A_PDL:
            continue
        mime = _PDL_BY_COMMAND.get(name, RAW_MIME_TYPE)
        if mime not in types:
            types.append(mime)
    return tuple(types) or (RAW_MIME_TYPE,)


def _clip_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8 without splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _txt(key: str, value: str) -> tuple[str, str]:
    return key, _clip_utf8(value, TXT_STRING_MAX - len(key.encode()) - 1)


def txt_record(printer: PrinterAnnouncement) -> tuple[tuple[str, str], ...]:
    """The Bonjour Printing TXT keys for a raw-socket printer; CUPS turns usb_* into a 1284 ID."""
    device_id = printer.device_id
    model = make_and_model(dict(device_id)) or printer.name
    pairs = [
        _txt("txtvers", "1"),
        _txt("qtotal", "1"),
        _txt("pdl", ",".join(pdl_mime_types(device_id.get("CMD", "")))),
        _txt("ty", model),
        _txt("product", f"({device_id.get('MDL', '').strip() or model})"),
        _txt("note", printer.location or printer.name),
        _txt("priority", str(DEFAULT_PRIORITY)),
    ]
    pairs += [_txt(f"usb_{key}", device_id[key].strip())
              for key in ("MFG", "MDL", "CMD") if device_id.get(key, "").strip()]
    if printer.admin_url:
        pairs.append(_txt("adminurl", printer.admin_url))
    return tuple(pairs)


def instance_name(name: str, hostname: str, ordinal: int = 1) -> str:
    """'<printer> @ <host>' with ' (n)' for the n-th duplicate, within one DNS label."""
    suffix = f" @ {hostname}" + (f" ({ordinal})" if ordinal > 1 else "")
    room = DNS_LABEL_MAX - len(suffix.encode())
    return _clip_utf8(name, max(room, 1)).rstrip() + suffix


def service_records(printers: Iterable[PrinterAnnouncement]) -> list[ServiceRecord]:
    """Records for every printer; instance names are unique within the set (case-insensitive,
    as DNS compares names)."""
    records: list[ServiceRecord] = []
    taken: set[str] = set()
    for printer in printers:
        ordinal = 1
        instance = instance_name(printer.name, printer.hostname)
        while instance.lower() in taken:
            ordinal += 1
            instance = instance_name(printer.name, printer.hostname, ordinal)
        taken.add(instance.lower())
        records.append(ServiceRecord(instance, printer.port, txt_record(printer)))
    return records


def admin_url(hostname: str, web_port: int, web_listen: str = "") -> str:
    """Where the web page is reached from the network: '' when the page is off or listens on
    loopback only, the address itself when it listens on one routable address."""
    if not web_port or not _reachable_from_network(web_listen):
        return ""
    host = f"{hostname}.local"
    address = ipaddress.ip_address(web_listen) if web_listen else None
    # a link-local address only means something with its interface: the host name is better
    if address is not None and not (address.is_unspecified or address.is_link_local):
        host = f"[{address}]" if address.version == 6 else str(address)
    port = "" if web_port == 80 else f":{web_port}"
    return f"http://{host}{port}/"


# --- adapters -------------------------------------------------------------------------------


class Announcer(Protocol):
    """Publishes the full desired set of services; `update` may block (run it off the loop)."""

    description: str

    def update(self, records: Sequence[ServiceRecord]) -> bool:
        """False (or an exception) when the set could not be published: tried again later."""
        ...

    def close(self) -> None: ...


Runner = Callable[[Sequence[str]], None]


def run_command(argv: Sequence[str]) -> None:
    """Run a helper command; a failure (or a hang) raises OSError with its message."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                                check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"{' '.join(argv)}: no answer after 30 s") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise OSError(f"{' '.join(argv)}: {message}")


class UmdnsAnnouncer:
    """OpenWrt: procd instance data read by umdns, refreshed without restarting the daemon.

    The init script's `announce` command re-submits the service definition with one mDNS entry
    per service in `state_file`; procd keeps the running process because only its data changed.
    `ubus call umdns reload` then makes umdns re-read every service's data.
    """

    def __init__(
        self,
        state_file: Path = MDNS_FILE,
        publish_command: Sequence[str] = (INIT_SCRIPT, "announce"),
        umdns_command: Sequence[str] = ("ubus", "call", "umdns", "reload"),
        run: Runner = run_command,
    ) -> None:
        self.state_file = state_file
        self.publish_command = tuple(publish_command)
        self.umdns_command = tuple(umdns_command)
        self.run = run
        self.description = "umdns (procd service data)"
        self._published: list[ServiceRecord] | None = None

    def update(self, records: Sequence[ServiceRecord]) -> None:
        """Withdraw before announcing: umdns announces new keys first and sends the goodbyes of
        vanished ones after, so a printer whose entry changed (same instance name, new key)
        would be announced and then deleted by its own goodbye (RFC 6762 §10.1). Publishing
        the set without the changed entries first puts the goodbye before the announcement."""
        wanted = list(records)
        if wanted == self._published:
            return True
        steps = [wanted]
        if self._published:
            kept = [r for r in self._published if r in wanted]
            if kept != self._published and kept != wanted:
                steps.insert(0, kept)
        try:
            for step in steps:
                self._publish(step)
        except OSError as err:  # the retry starts from what was last published
            log.warning("mDNS announcement not refreshed: %s", err)
            return False
        log.info("mDNS: announcing %s", ", ".join(r.instance for r in wanted) or "nothing")
        return True

    def _publish(self, records: list[ServiceRecord]) -> None:
        self.write_state(records)
        self.run(self.publish_command)
        self.run(self.umdns_command)
        self._published = records

    def write_state(self, records: Sequence[ServiceRecord]) -> None:
        """Replace the state file atomically, so the init script never reads half of it."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_name(f".{self.state_file.name}.tmp")
        temporary.write_text(json.dumps({"services": [r.as_json() for r in records]}, indent=1))
        os.replace(temporary, self.state_file)

    def close(self) -> None:
        """Forget the services so a later start does not announce stale printers.

        procd is not asked for anything here: while the service is being stopped, submitting it
        again would start it anew. The init script's stop makes umdns drop the entries.
        """
        try:
            self.state_file.unlink(missing_ok=True)
        except OSError as err:
            log.warning("could not remove %s: %s", self.state_file, err)


class ZeroconfAnnouncer:
    """python-zeroconf responder for machines without umdns; registers, updates, unregisters."""

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        server: str | None = None,
        addresses: Sequence[str] | None = None,
    ) -> None:
        from zeroconf import InterfaceChoice, Zeroconf

        chosen = list(interfaces) if interfaces else InterfaceChoice.All
        self._zeroconf = Zeroconf(interfaces=chosen)
        # A host name of our own: publishing address records under the machine's name would
        # contradict the system's own responder (avahi) where it announces other addresses.
        self.server = server or f"usbprintd-{socket.gethostname()}.local."
        self.addresses = list(addresses) if addresses else _announce_addresses(interfaces)
        self._registered: dict[str, Any] = {}  # instance -> zeroconf.ServiceInfo
        self.description = f"python-zeroconf as {self.server} ({', '.join(self.addresses)})"

    def _info(self, record: ServiceRecord) -> Any:
        from zeroconf import ServiceInfo

        service_type = f"{record.service_type}.local."
        return ServiceInfo(
            service_type, f"{record.instance}.{service_type}", port=record.port,
            properties=dict(record.txt), server=self.server, parsed_addresses=self.addresses,
        )

    def update(self, records: Sequence[ServiceRecord]) -> bool:
        wanted = {record.instance: self._info(record) for record in records}
        changed = False
        for instance in [i for i in self._registered if i not in wanted]:
            self._zeroconf.unregister_service(self._registered.pop(instance))
            changed = True
        for instance, info in wanted.items():
            current = self._registered.get(instance)
            if current is None:
                self._zeroconf.register_service(info)
            elif (current.port, current.properties) != (info.port, info.properties):
                self._zeroconf.update_service(info)
            else:
                continue
            self._registered[instance] = info
            changed = True
        if changed:
            log.info("mDNS: announcing %s", ", ".join(wanted) or "nothing")
        return True

    def close(self) -> None:
        self._zeroconf.unregister_all_services()
        self._zeroconf.close()
        self._registered.clear()


def _announce_addresses(interfaces: Sequence[str] | None) -> list[str]:
    """The IP addresses to publish: the chosen interface addresses, or every non-loopback one."""
    if interfaces:
        return list(interfaces)
    from zeroconf import get_all_addresses

    return [a for a in get_all_addresses() if not ipaddress.ip_address(a).is_loopback]


class NullAnnouncer:
    """Nothing to announce with (or mDNS is off): says so once, then stays quiet."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.description = f"nothing ({reason})"
        self._told = False

    def update(self, records: Sequence[ServiceRecord]) -> bool:
        if records and not self._told:
            log.warning("printers are not announced over mDNS: %s", self.reason)
            self._told = True
        return True

    def close(self) -> None:
        pass


def _module_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass(frozen=True)
class Platform:
    """What the machine offers for mDNS; a seam so the choice is testable anywhere."""

    exists: Callable[[str], bool] = os.path.exists
    has_module: Callable[[str], bool] = _module_available


def choose_announcer(settings: GlobalSettings, platform: Platform | None = None) -> Announcer:
    """umdns under procd, python-zeroconf where installed, otherwise a no-op that says why."""
    platform = platform or Platform()
    if not settings.mdns:
        return NullAnnouncer("mDNS is switched off (option mdns '0')")
    under_procd = platform.exists("/sbin/procd") or platform.exists("/bin/ubus")
    if under_procd and platform.exists(UMDNS_BINARY):
        return UmdnsAnnouncer()
    if platform.has_module("zeroconf"):
        try:
            return ZeroconfAnnouncer()
        except OSError as err:  # no multicast-capable interface, port 5353 refused...
            return NullAnnouncer(f"python-zeroconf could not start: {err}")
    if under_procd:
        return NullAnnouncer(f"umdns is not installed ({UMDNS_BINARY} missing)")
    return NullAnnouncer("neither umdns (OpenWrt) nor python-zeroconf is available")


# --- the daemon service -------------------------------------------------------------------------


def device_id_of(usb: Mapping[str, str]) -> dict[str, str]:
    """The parsed 1284 ID of a printer the USB layer reported (empty for other devices)."""
    return parse_device_id(usb.get("device_id", ""))


def _reachable_from_network(bind: str) -> bool:
    return not bind or not ipaddress.ip_address(bind).is_loopback


def announced_printers(registry: Registry, hostname: str) -> list[PrinterAnnouncement]:
    """The printers that should be announced now: served, mDNS on, reachable from the network."""
    settings = registry.config.settings
    if not settings.mdns:
        return []
    url = admin_url(hostname, settings.web_port, settings.web_listen)
    attachments = registry.attachments()
    return [
        PrinterAnnouncement(
            name=printer.display_name, port=printer.port, hostname=hostname,
            device_id=device_id_of(attachments[printer.section].usb), admin_url=url,
        )
        for printer in registry.config.printers
        if printer.mdns and registry.printer_state(printer.section) == "serving"
        and printer.section in attachments and _reachable_from_network(printer.bind)
    ]


class _Publisher:
    """Runs announcer calls on a thread of their own (they run commands or wait on the network),
    always with the newest wanted set; intermediate sets are skipped."""

    def __init__(self, make_announcer: Callable[[], Announcer],
                 retry_seconds: float = PUBLISH_RETRY_SECONDS) -> None:
        self._make_announcer = make_announcer
        self.retry_seconds = retry_seconds
        self._pending: list[ServiceRecord] | None = None
        self._stopping = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="mdns", daemon=True)
        self._thread.start()

    def submit(self, records: list[ServiceRecord]) -> None:
        with self._wake:
            self._pending = records
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            announcer = self._make_announcer()
        except Exception:  # e.g. no usable network interface yet
            log.exception("mDNS announcer could not start")
            announcer = NullAnnouncer("the announcer could not start")
        log.info("mDNS: announcing with %s", announcer.description)
        unpublished: list[ServiceRecord] | None = None  # to try again, unless a newer set comes
        try:
            while True:
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping or self._pending is not None,
                                        None if unpublished is None else self.retry_seconds)
                    records, self._pending = self._pending, None
                    stopping = self._stopping
                records = records if records is not None else unpublished
                if records is not None:
                    unpublished = None if _published(announcer, records) else records
                if stopping:
                    return
        finally:
            announcer.close()


def _published(announcer: Announcer, records: list[ServiceRecord]) -> bool:
    try:
        return announcer.update(records) is not False
    except Exception:  # a responder failure must not take the daemon down
        log.exception("mDNS update failed")
        return False


class AnnounceService:
    """Keeps the announced set equal to the printers being served."""

    name = "mdns"

    def __init__(
        self,
        choose: Callable[[GlobalSettings], Announcer] = choose_announcer,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self._choose = choose
        self._hostname = hostname
        self._core: Core | None = None
        self._publisher: _Publisher | None = None
        self._mdns_on: bool | None = None
        self._submitted: list[ServiceRecord] | None = None
        self._refresh_timer: asyncio.TimerHandle | None = None

    def start(self, core: Core) -> None:
        self._core = core
        core.registry.subscribe(self._refresh)
        self._refresh()

    def reload(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """On the loop thread after any change: look again shortly. Jobs starting and ending
        are changes too, and many of them in a row need one look, not one each."""
        if self._core is None or self._refresh_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests of the service alone): look at once
            self._recompute()
            return
        self._refresh_timer = loop.call_later(REFRESH_DELAY_SECONDS, self._recompute)

    def _recompute(self) -> None:
        """Compute the wanted set and hand it on if it is new."""
        self._refresh_timer = None
        if self._core is None:
            return
        registry = self._core.registry
        settings = registry.config.settings
        if settings.mdns != self._mdns_on:
            self._switch_announcer(settings)
        records = service_records(announced_printers(registry, self._hostname()))
        if records != self._submitted and self._publisher is not None:
            self._submitted = records
            self._publisher.submit(records)

    def _switch_announcer(self, settings: GlobalSettings) -> None:
        if self._publisher is not None:
            self._publisher.submit([])  # withdraw what the old announcer published
            self._publisher.stop()
        self._mdns_on = settings.mdns
        self._submitted = None
        self._publisher = _Publisher(lambda: self._choose(settings))

    async def stop(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.stop)
            self._publisher = None


def create_service(core: Core) -> AnnounceService:
    return AnnounceService()
