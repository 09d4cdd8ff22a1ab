"""Reconcile, don't restart: which print servers should exist, and what must change to get there.

Pure functions over plain data so every decision is unit-testable without sockets or devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from usbprintd.appsocket import ServerSpec
from usbprintd.config import Config


@dataclass(frozen=True)
class Attachment:
    """Where a configured printer's device is right now, and whether it can take jobs."""

    device_path: str
    source: str = "config"  # "config" (pinned device path) or "usb" (found by the USB layer)
    ready: bool = True  # False while firmware is missing or uploading
    state: str = "online"  # online, needs-firmware, uploading-firmware, paper-out, offline, error
    detail: str = ""  # shown to the owner, e.g. "needs sihp1018.dl in /etc/usbprintd/firmware"
    progress: float | None = None  # 0..1 while a firmware upload runs
    usb: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    device_path: str
    spec: ServerSpec


@dataclass(frozen=True)
class Plan:
    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    update: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stop or self.start or self.update)


def desired_targets(config: Config, attachments: Mapping[str, Attachment]) -> dict[str, Target]:
    """One server per attached printer; it listens only if enabled, valid and ready."""
    settings = config.settings
    targets: dict[str, Target] = {}
    for printer in config.printers:
        attachment = attachments.get(printer.section)
        if attachment is None:
            continue
        spec = ServerSpec(
            port=printer.port,
            bind=printer.bind,
            queue_limit=settings.queue_limit,
            idle_timeout=settings.idle_timeout,
            drain_grace=settings.drain_grace,
            bidirectional=printer.bidirectional,
            accepting=printer.enabled and printer.valid and attachment.ready,
        )
        targets[printer.section] = Target(attachment.device_path, spec)
    return targets


def plan_changes(current: Mapping[str, Target], desired: Mapping[str, Target]) -> Plan:
    """A server is replaced only when its device changed; settings changes are applied live."""
    moved = {s for s in current.keys() & desired.keys()
             if current[s].device_path != desired[s].device_path}
    return Plan(
        stop=tuple(sorted((current.keys() - desired.keys()) | moved)),
        start=tuple(sorted((desired.keys() - current.keys()) | moved)),
        update=tuple(sorted(s for s in current.keys() & desired.keys()
                            if s not in moved and current[s].spec != desired[s].spec)),
    )
