"""One present USB printer, from the moment its lp device appears until it goes.

Its life runs as one asyncio task: read the device ID (retrying while the node is not there yet
or busy), let the owner (`PrinterHost`) find its section, bring up its firmware if it needs
some, then watch its status every few seconds — between jobs by opening the node briefly, during
a stalled job through the job's own fd, and never while data streams.

Every ioctl is a USB control transfer that a wedged printer can hold for seconds, so it runs on
the shared `BlockingWorker`, never on the event loop. An answer counts only if the printer is
still in the situation it was asked in: one that arrives after the printer went away (its task
was cancelled) or after a job started or ended is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from usbprintd.appsocket import PrintServer
from usbprintd.config import PrinterSettings
from usbprintd.reconcile import Attachment
from usbprintd.usb.firmware import (
    DeviceGone,
    FirmwareStatus,
    FirmwareTimings,
    blob_name_for,
    bring_up,
)
from usbprintd.usb.identity import UsbIdentity
from usbprintd.usb.ieee1284 import has_firmware_version, make_and_model, parse_device_id
from usbprintd.usb.lp import STATUS_TEXT, LpOps, decode_status, open_when_ready
from usbprintd.usb.worker import BlockingWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrinterTimings:
    open_patience: float = 3.0  # per attempt, for 'not yet' errors right after the hotplug event
    status_interval: float = 2.0
    firmware: FirmwareTimings = field(default_factory=FirmwareTimings)


class PrinterHost(Protocol):
    """What a printer needs from the set of printers it belongs to."""

    def settings_for(self, printer: UsbPrinter) -> PrinterSettings | None: ...

    def firmware_dir(self) -> Path: ...

    def server_for(self, printer: UsbPrinter) -> PrintServer | None: ...

    def identified(self, printer: UsbPrinter) -> None:
        """The device ID was read: time to find (or create) the printer's section."""

    def changed(self, printer: UsbPrinter) -> None:
        """State, status or firmware progress changed."""


class UsbPrinter:
    def __init__(
        self,
        devpath: str,
        node: str,
        identity: UsbIdentity,
        host: PrinterHost,
        ops: LpOps,
        worker: BlockingWorker,
        timings: PrinterTimings = PrinterTimings(),
    ) -> None:
        self.devpath = devpath
        self.node = node
        self.identity = identity
        self.host = host
        self.ops = ops
        self.worker = worker
        self.timings = timings
        self.device_id = ""
        self.fields: dict[str, str] = {}
        self.identified = False
        self.open_error = ""
        self.status = "online"
        self.firmware: FirmwareStatus | None = None  # None: none needed, or not looked at yet
        self.autoadd_tried = False
        self.appeared: float | None = None  # loop time of start(): the firmware settle counts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- what others see ---------------------------------------------------------------------

    @property
    def label(self) -> str:
        """Make and model from the 1284 ID or the USB strings: 'HP LaserJet 1018'."""
        return (make_and_model(self.fields, self.identity.manufacturer, self.identity.product)
                or f"USB printer {self.identity.usb_id}")

    @property
    def name(self) -> str:
        settings = self.host.settings_for(self)
        return settings.display_name if settings else self.label

    def pending_firmware(self) -> FirmwareStatus | None:
        """The firmware state while the printer cannot take jobs for want of firmware, else
        None. Known from the moment the printer has a section, before the upload task runs, so
        the port never opens for a printer that still needs its firmware."""
        if self.firmware is not None:
            return None if self.firmware.loaded else self.firmware
        settings = self.host.settings_for(self)
        blob = self._blob_needed(settings) if settings else None
        if blob is None:
            return None
        if blob.is_file():
            return FirmwareStatus("uploading-firmware", f"uploading {blob.name}", 0.0, blob=blob)
        return FirmwareStatus("needs-firmware", f"needs {blob.name} in {blob.parent}", blob=blob)

    def attachment(self) -> Attachment:
        firmware = self.pending_firmware()
        if self.open_error:
            state, detail = "error", self.open_error
        elif firmware is not None:
            state, detail = firmware.state, firmware.detail
        else:
            state, detail = self.status, ""
        usb = {**self.identity.as_dict(), "device_id": self.device_id,
               "firmware_version": self.fields.get("FWVER", "")}
        return Attachment(
            device_path=self.node,
            source="usb",
            ready=self.identified and not self.open_error and firmware is None,
            state=state,
            detail=detail,
            progress=firmware.progress if firmware is not None else None,
            usb=usb,
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.appeared = loop.time()
        self._task = loop.create_task(self._run())

    def stop(self) -> asyncio.Task[None] | None:
        if self._task is not None:
            self._task.cancel()
        return self._task

    def wake(self) -> None:
        """Something it waits for may have changed (its section, the config)."""
        self._wake.set()

    def firmware_changed(self) -> None:
        """A blob was added or removed: a printer that gave up tries again."""
        if self.firmware is not None and self.firmware.state == "error":
            self.firmware = None
        self.wake()

    async def _wait(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _run(self) -> None:
        try:
            while True:
                await self._step()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must cost this printer's status, never the daemon
            log.exception("%s: USB printer handling stopped", self.node)

    async def _step(self) -> None:
        if not self.identified or self.open_error:
            opened = await self._identify()
            self.host.changed(self)
            if not opened:
                await self._wait(self.timings.status_interval)
            return
        settings = self.host.settings_for(self)
        if settings is None or not settings.enabled:
            await self._wait()  # unconfigured or disabled: leave the printer alone
            return
        blob = self._blob_needed(settings)
        if blob is not None:
            await self._bring_up_firmware(blob)
            return
        await self._poll_status()
        await self._wait(self.timings.status_interval)

    # --- identity --------------------------------------------------------------------------

    async def _identify(self) -> bool:
        try:
            fd = await open_when_ready(self.ops, self.node, self.timings.open_patience)
        except OSError as err:
            message = f"cannot open {self.node}: {os.strerror(err.errno or 0)}"
            if message != self.open_error:
                log.warning("%s (%s): %s; retrying", self.label, self.identity.describe(),
                            message)
            self.open_error = message
            self._announce()  # matched anyway, so the owner sees the printer and why
            return False
        device_id, status = await self.worker.query_fd(fd, partial(_probe, self.ops, self.node))
        if device_id is not None:
            self._set_device_id(device_id)
        if status is not None:
            self._set_status(decode_status(status))
        if self.open_error:
            log.info("%s: %s opens again", self.name, self.node)
            self.open_error = ""
        self._announce()
        return True

    def _announce(self) -> None:
        """The first time the printer is known: the host finds (or creates) its section."""
        if self.identified:
            return
        self.identified = True
        if self.open_error:
            log.info("USB printer %s (%s) at %s", self.label, self.identity.describe(), self.node)
        else:
            log.info("USB printer %s (%s) at %s, device ID '%s'", self.label,
                     self.identity.describe(), self.node, self.device_id)
        self.host.identified(self)

    def _set_device_id(self, device_id: str) -> None:
        self.device_id = device_id
        self.fields = parse_device_id(device_id)

    # --- firmware --------------------------------------------------------------------------

    def _blob_needed(self, settings: PrinterSettings) -> Path | None:
        """The blob to upload, or None when the firmware runs, none is needed, or the last
        bring-up gave up (until the owner provides a blob)."""
        name = blob_name_for(self.identity.usb_id, settings.firmware)
        if not name or has_firmware_version(self.fields):
            return None
        if self.firmware is not None and self.firmware.state == "error":
            return None
        return self.host.firmware_dir() / name

    async def _bring_up_firmware(self, blob: Path) -> None:
        if (self.firmware is not None and self.firmware.state == "needs-firmware"
                and self.firmware.blob == blob and not blob.is_file()):
            await self._wait()  # still missing: already said so
            return

        def report(status: FirmwareStatus) -> None:
            self.firmware = status
            self.host.changed(self)

        try:
            result = await bring_up(self.node, blob, self.ops, self.worker, report,
                                    self.timings.firmware, self.name, self.appeared)
        except DeviceGone:
            self.firmware = FirmwareStatus("error", f"{self.node} vanished during the upload")
            self.host.changed(self)
            await self._wait()  # the remove event ends this printer
            return
        self.firmware = result
        if result.loaded:
            self._set_device_id(result.device_id)
            log.info("%s: firmware %s loaded (FWVER %s)", self.name, blob.name,
                     self.fields.get("FWVER", "?"))
        self.host.changed(self)
        if not result.loaded:
            await self._wait()  # a blob, a config change or SIGHUP wakes it up

    # --- status ----------------------------------------------------------------------------

    async def _poll_status(self) -> None:
        raw = await self._read_status()
        if raw is None:
            return
        if self._set_status(decode_status(raw)):
            self.host.changed(self)

    def _set_status(self, status: str) -> bool:
        """Remember the status; a change is logged ('HP LaserJet 1018: paper out'). It starts
        as 'online', so a printer plugged in out of paper says so at once."""
        if status == self.status:
            return False
        level = logging.INFO if status == "online" else logging.WARNING
        log.log(level, "%s: %s", self.name, STATUS_TEXT[status])
        self.status = status
        return True

    async def _read_status(self) -> int | None:
        """The status byte, read only when it is safe: between jobs (a brief open of its own)
        or through a stalled job's fd; never while job data streams. None when it could not
        be read, or the answer came too late to mean anything."""
        asked_during = self._job_now()
        fd = self._status_fd(asked_during)
        if fd is None:
            return None
        raw = await self.worker.query_fd(fd, partial(_status, self.ops, self.node))
        if not _same_job(self._job_now(), asked_during):
            log.debug("%s: status read before a job started or ended: dropped", self.node)
            return None
        return raw

    def _job_now(self) -> tuple[PrintServer, object] | None:
        """The server and the job it runs now, or None between jobs."""
        server = self.host.server_for(self)
        if server is None or server.active is None:
            return None
        return server, server.active

    def _status_fd(self, job: tuple[PrintServer, object] | None) -> int | None:
        """An fd for the worker to own: a dup() of a stalled job's fd (the job may close its
        own meanwhile), or a brief open of its own between jobs. None while the worker is busy
        with another call (a slow printer): usblp allows one opener, and an fd waiting its turn
        would keep this printer's device from the next job, which then could not open it."""
        if self.worker.busy:
            return None
        if job is not None:
            fd = job[0].channel_fd
            try:
                return None if fd is None else os.dup(fd)
            except OSError as err:
                log.debug("%s: status during a job: %s", self.node, err)
                return None
        try:
            return self.ops.open(self.node)
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.ENOENT, errno.ENODEV, errno.ENXIO):
                log.debug("%s: status: %s", self.node, err)
            return None


def _same_job(now: tuple[PrintServer, object] | None,
              then: tuple[PrintServer, object] | None) -> bool:
    """By identity: a job record may equal another one field for field."""
    if now is None or then is None:
        return now is then
    return now[0] is then[0] and now[1] is then[1]


# --- on the worker thread: plain reads, no printer state touched --------------------------------


def _status(ops: LpOps, node: str, fd: int) -> int | None:
    try:
        return ops.status(fd)
    except OSError as err:
        log.debug("%s: status: %s", node, err)
        return None



def _probe(ops: LpOps, node: str, fd: int) -> tuple[str | None, int | None]:
    """The device ID and the status byte, each None when the printer did not say."""
    try:
        device_id: str | None = ops.device_id(fd)
    except OSError as err:
        log.debug("%s: no device ID: %s", node, err)
        device_id = None
    return device_id, _status(ops, node, fd)
