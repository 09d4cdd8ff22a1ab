"""The one owner of state: configured printers, where their devices are, and their servers.

Runs on the event loop thread only. Other threads (the web server) read `snapshot()` results and
submit commands through `usbprintd.core.Core`, never touching this object directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any

from usbprintd.appsocket import PrintServer
from usbprintd.config import (
    GLOBAL_NAME,
    GLOBAL_TYPE,
    PRINTER_TYPE,
    Config,
    PrinterSettings,
    format_value,
    next_free_port,
    parse_config,
    section_name_for,
    validate_global_form,
    validate_printer_form,
    web_port_errors,
)
from usbprintd.devices import Device
from usbprintd.jobs import JobJournal, Outcome
from usbprintd.reconcile import Attachment, Target, desired_targets, plan_changes
from usbprintd.uci import (
    AddSection,
    ConfigStore,
    DeleteSection,
    SetOption,
    UciChange,
    UciError,
    UciSection,
)

log = logging.getLogger(__name__)

Errors = dict[str, str]


class Registry:
    def __init__(self, store: ConfigStore, log_level: str | None = None) -> None:
        self.store = store
        self.log_level_override = log_level  # from the command line: wins over the config
        self.config = Config()
        self.config_error = ""
        self.journals: dict[str, JobJournal] = {}
        self.servers: dict[str, tuple[Target, PrintServer]] = {}
        self.usb_attachments: dict[str, Attachment] = {}
        self._pinned: dict[str, Attachment] = {}
        self._subscribers: list[Callable[[], None]] = []
        self._notify_pending = False
        self._firmware_subscribers: list[Callable[[], None]] = []
        self._stopping: list[asyncio.Task[None]] = []
        self._reported_issues: set[str] = set()
        self._global_section: str | None = None
        self._loaded_sections = 0
        self.unserved_usb: tuple[dict[str, str], ...] = ()

    # --- observers -----------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> None:
        """`callback` runs (on the loop) after anything a snapshot shows may have changed."""
        self._subscribers.append(callback)

    def changed(self) -> None:
        """Coalesced: a burst of changes (a job ending, the next starting) notifies once."""
        if self._notify_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests of the registry alone): notify at once
            self._notify()
            return
        self._notify_pending = True
        loop.call_soon(self._notify)

    def _notify(self) -> None:
        self._notify_pending = False
        for callback in self._subscribers:
            callback()

    def subscribe_firmware(self, callback: Callable[[], None]) -> None:
        """`callback` runs when the owner added or removed a firmware blob."""
        self._firmware_subscribers.append(callback)

    def firmware_changed(self) -> None:
        for callback in self._firmware_subscribers:
            callback()

    # --- configuration -----------------------------------------------------------------------

    def reload(self, edited_outside: bool = False) -> bool:
        """Re-read the store and converge; a broken file keeps the last good config serving.

        `edited_outside` (SIGHUP): an empty or missing package where there was a configuration
        is far likelier a file truncated by a full flash or a slip at the shell than a wish to
        stop every printer, so it counts as broken too (a restart starts from it)."""
        try:
            sections = self._load_sound(edited_outside)
        except (UciError, OSError) as err:
            self.config_error = f"{self.store.description}: {err}"
            log.error("configuration not loaded, keeping the last good one: %s", self.config_error)
            self.changed()
            return False
        self.config = parse_config(sections)
        self._loaded_sections = len(sections)
        self._global_section = next(
            (s.name for s in sections if s.type == GLOBAL_TYPE), None)
        self.config_error = ""
        self._report_issues()
        self._apply_log_level()
        self.reconcile()
        return True

    def _report_issues(self) -> None:
        current = {str(issue) for issue in self.config.issues}
        for issue in self.config.issues:
            if str(issue) not in self._reported_issues:
                level = logging.WARNING if issue.severity == "warning" else logging.ERROR
                log.log(level, "config: %s", issue)
        self._reported_issues = current

    def _apply_log_level(self) -> None:
        name = self.log_level_override or self.config.settings.log_level
        level = getattr(logging, name.upper(), logging.INFO)
        logging.getLogger("usbprintd").setLevel(level)

    def _load_sound(self, lost_counts_as_broken: bool) -> list[UciSection]:
        sections = self.store.load()
        if lost_counts_as_broken and not sections and self._loaded_sections:
            raise UciError("holds no configuration (empty or missing); restart the daemon "
                           "to start from an empty one")
        return sections

    def apply_changes(self, changes: list[UciChange]) -> Errors:
        """Write to UCI (the owner's action) and converge on the result.

        A store that became unreadable, empty or missing since the last good load is left
        alone: the write would start from the damaged file and make the loss permanent (an
        autoadd would leave one printer, a "forget" none)."""
        try:
            self._load_sound(lost_counts_as_broken=True)
        except (UciError, OSError) as err:
            return self._not_saved(f"{self.store.description}: {err}")
        try:
            self.store.apply(changes)
        except (UciError, OSError) as err:
            return self._not_saved(str(err))
        self.reload()
        return {}

    def _not_saved(self, reason: str) -> Errors:
        log.error("configuration not saved: %s", reason)
        return {"_": f"not saved: {reason}"}

    def update_printer(self, section: str, form: Mapping[str, str]) -> Errors:
        values, errors = validate_printer_form(self.config, section, dict(form))
        if errors:
            return errors
        log.info("printer %s: settings changed: %s", section, ", ".join(sorted(values)))
        return self.apply_changes(
            [SetOption(section, key, format_value(value)) for key, value in values.items()]
        )

    def update_settings(self, form: Mapping[str, str]) -> Errors:
        values, errors = validate_global_form(dict(form))
        errors = errors or web_port_errors(self.config, values)
        if errors:
            return errors
        changes: list[UciChange] = []
        section = self._global_section
        if section is None:
            section = GLOBAL_NAME
            changes.append(AddSection(GLOBAL_TYPE, section))
        changes += [SetOption(section, k, format_value(v)) for k, v in values.items()]
        return self.apply_changes(changes)

    def add_printer(self, label: str, values: Mapping[str, Any]) -> str:
        """A new printer section with the next free port (autoadd; one UCI write)."""
        section = section_name_for(label, (p.section for p in self.config.printers))
        settings = PrinterSettings(section=section, name=label, port=next_free_port(self.config))
        settings = replace(settings, **values)
        changes: list[UciChange] = [AddSection(PRINTER_TYPE, section)]
        changes += [SetOption(section, f, format_value(getattr(settings, f)))
                    for f in ("enabled", "name", "usb_id", "serial", "usb_path", "port",
                              "bidirectional", "firmware", "mdns")]
        errors = self.apply_changes(changes)
        if errors:
            raise UciError(errors["_"])
        log.info("new printer '%s' saved as section %s on port %d", label, section, settings.port)
        return section

    def forget_printer(self, section: str) -> Errors:
        if self.config.printer(section) is None:
            return {"section": f"no printer '{section}'"}
        if section in self.attachments():
            return {"section": "only an absent printer can be forgotten"}
        self.journals.pop(section, None)
        return self.apply_changes([DeleteSection(section)])

    # --- presence ------------------------------------------------------------------------------

    def attachments(self) -> dict[str, Attachment]:
        result = dict(self._pinned)
        result.update(self.usb_attachments)
        return result

    def set_usb_attachment(self, section: str, attachment: Attachment | None) -> None:
        """Called by the USB layer when a printer's device appears, changes state or goes."""
        if attachment is None:
            self.usb_attachments.pop(section, None)
        else:
            self.usb_attachments[section] = attachment
        self.reconcile()

    def set_unserved_usb(self, printers: Iterable[Mapping[str, str]]) -> None:
        """USB printers plugged in but not served (not configured, no usblp device), each
        with a `reason` for the owner."""
        unserved = tuple(dict(p) for p in printers)
        if unserved != self.unserved_usb:
            self.unserved_usb = unserved
            self.changed()

    def _pinned_attachments(self) -> dict[str, Attachment]:
        """Printers whose config names a device path are present while that path exists."""
        return {
            p.section: Attachment(p.device)
            for p in self.config.printers
            if p.device and p.section not in self.usb_attachments and os.path.exists(p.device)
        }

    def check_pinned_devices(self) -> None:
        if self._pinned_attachments() != self._pinned:
            self.reconcile()

    # --- convergence ---------------------------------------------------------------------------

    def reconcile(self) -> None:
        self._pinned = self._pinned_attachments()
        desired = desired_targets(self.config, self.attachments())
        current = {section: target for section, (target, _) in self.servers.items()}
        plan = plan_changes(current, desired)
        for section in plan.stop:
            _, server = self.servers.pop(section)
            gone = self.config.printer(section) is None
            reason = "printer removed from the configuration" if gone else "printer unplugged"
            self._track(server.stop(Outcome.ABORTED if gone else Outcome.FAILED, reason))
            log.info("%s: no longer served (%s)", section, reason)
        for section in plan.start:
            self._start_server(section, desired[section])
        for section in plan.update:
            _, server = self.servers[section]
            self.servers[section] = (desired[section], server)
            server.update(desired[section].spec)
        if not plan.empty:
            self._log_served(plan.start + plan.update)
        self.changed()

    def _start_server(self, section: str, target: Target) -> None:
        journal = self.journals.setdefault(section, JobJournal(section))
        server = PrintServer(section, Device(target.device_path), target.spec, journal,
                             on_change=self.changed)
        self.servers[section] = (target, server)
        server.start()

    def _log_served(self, sections: tuple[str, ...]) -> None:
        for section in sections:
            target, server = self.servers[section]
            printer = self.config.printer(section)
            name = printer.display_name if printer else section
            if server.listeners:
                log.info("serving '%s' (%s) on %s", name, target.device_path,
                         ", ".join(server.addresses))
            elif not target.spec.accepting:
                log.info("'%s' (%s) is present but not accepting jobs: %s", name,
                         target.device_path, self.printer_state(section))

    def _track(self, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            self._stopping.append(task)
            task.add_done_callback(self._stopping.remove)

    async def shutdown(self) -> None:
        """Stop every server; jobs in progress are ended and accounted as aborted."""
        for section in list(self.servers):
            _, server = self.servers.pop(section)
            self._track(server.stop(Outcome.ABORTED, "daemon stopping"))
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # --- snapshots -----------------------------------------------------------------------------

    def printer_state(self, section: str) -> str:
        printer = self.config.printer(section)
        attachment = self.attachments().get(section)
        entry = self.servers.get(section)
        if printer is None:
            return "unknown"
        if not printer.valid:
            return "error"
        if attachment is None:
            return "absent"
        if not printer.enabled:
            return "disabled"
        if attachment.state != "online":
            return attachment.state
        if entry is not None and entry[1].bind_error:
            return "error"
        return "serving"

    def snapshot(self) -> dict[str, Any]:
        """A plain, JSON-ready copy of everything the web page shows."""
        settings = asdict(self.config.settings)
        settings.pop("password_hash", None)
        return {
            "settings": settings,
            "config_error": self.config_error,
            "issues": [asdict(issue) for issue in self.config.issues],
            "printers": [self._printer_snapshot(p) for p in self.config.printers],
            "unserved_usb": [dict(p) for p in self.unserved_usb],
        }

    def _printer_snapshot(self, printer: PrinterSettings) -> dict[str, Any]:
        attachment = self.attachments().get(printer.section)
        entry = self.servers.get(printer.section)
        server = entry[1] if entry else None
        journal = self.journals.get(printer.section)
        active = server.active.job.as_dict() if server and server.active else None
        if active is not None and server is not None:
            active["stalled"] = server.stalled
        return {
            "section": printer.section,
            "name": printer.display_name,
            "settings": asdict(printer),
            "state": self.printer_state(printer.section),
            "present": attachment is not None,
            "device": attachment.device_path if attachment else "",
            "detail": attachment.detail if attachment else "",
            "progress": attachment.progress if attachment else None,
            "usb": dict(attachment.usb) if attachment else {},
            "listening": server.addresses if server else [],
            "bind_error": server.bind_error if server else "",
            "active_job": active,
            "queue": [c.job.as_dict() for c in server.waiting] if server else [],
            "jobs": journal.snapshot() if journal else JobJournal(printer.section).snapshot(),
        }
