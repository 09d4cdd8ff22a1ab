"""Firmware for host-based HP LaserJets, which forget it at every power-off.

Such a printer enumerates without `FWVER` in its IEEE 1284 device ID. Bringing it up means
writing the owner's blob (HP's, never shipped with usbprintd) to its lp device, then asking for
the device ID again until `FWVER` appears; only then may it take jobs. The device ID is always
read through the ioctl (sysfs `ieee1284_id` is cached at probe time and goes stale), on the
shared worker thread through a dup() of the upload's fd: the ioctl is a USB control transfer
that may take seconds, and the upload may be cancelled (unplug) while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from usbprintd.devices import DeviceError, PollingChannel
from usbprintd.usb.ieee1284 import has_firmware_version, parse_device_id
from usbprintd.usb.lp import LpOps, open_when_ready
from usbprintd.usb.worker import BlockingWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirmwareModel:
    usb_id: str
    model: str
    blob: str


# foo2zjs's hotplug table (research: openwrt-platform.md §1.1); the P1007 and P1008 take the
# P1005 and P1006 blobs.
FIRMWARE_MODELS: tuple[FirmwareModel, ...] = (
    FirmwareModel("03f0:0517", "HP LaserJet 1000", "sihp1000.dl"),
    FirmwareModel("03f0:1317", "HP LaserJet 1005", "sihp1005.dl"),
    FirmwareModel("03f0:4117", "HP LaserJet 1018", "sihp1018.dl"),
    FirmwareModel("03f0:2b17", "HP LaserJet 1020", "sihp1020.dl"),
    FirmwareModel("03f0:3d17", "HP LaserJet P1005", "sihpP1005.dl"),
    FirmwareModel("03f0:3e17", "HP LaserJet P1006", "sihpP1006.dl"),
    FirmwareModel("03f0:4817", "HP LaserJet P1007", "sihpP1005.dl"),
    FirmwareModel("03f0:4917", "HP LaserJet P1008", "sihpP1006.dl"),
    FirmwareModel("03f0:3f17", "HP LaserJet P1505", "sihpP1505.dl"),
)
_MODELS_BY_USB_ID = {model.usb_id: model for model in FIRMWARE_MODELS}


def firmware_model(usb_id: str) -> FirmwareModel | None:
    return _MODELS_BY_USB_ID.get(usb_id.lower())


def blob_name_for(usb_id: str, configured: str) -> str:
    """The printer section's `firmware` option, else the table's blob, else '' (none needed)."""
    if configured:
        return configured
    model = firmware_model(usb_id)
    return model.blob if model else ""


@dataclass(frozen=True)
class FirmwareTimings:
    # From the moment the printer appeared to the first byte of its blob. foo2zjs's hotplug
    # script (`sleep 3`) and HPLIP (`hp-firmware -y3`) both wait 3 s after the printer shows up
    # before sending it; usbprintd keeps to the time those tools are known to work with.
    settle: float = 3.0
    chunk: int = 64 * 1024  # progress is reported per chunk; usblp sends 8 KiB URBs anyway
    write_timeout: float = 30.0  # per chunk: a printer that takes nothing fails the attempt
    id_interval: float = 0.5
    id_timeout: float = 20.0  # HP: "light flashes orange for ~5 seconds"
    attempts: int = 3
    open_patience: float = 5.0


@dataclass(frozen=True)
class FirmwareStatus:
    """Where a printer's firmware bring-up stands; `state` doubles as the attachment state."""

    state: str  # 'loaded', 'needs-firmware', 'uploading-firmware' or 'error'
    detail: str = ""
    progress: float | None = None
    device_id: str = ""  # the ID read once FWVER appeared
    blob: Path | None = None

    @property
    def loaded(self) -> bool:
        return self.state == "loaded"


class UploadFailed(Exception):
    pass


class DeviceGone(Exception):
    """The printer vanished during the upload (unplugged or power-cycled)."""


async def bring_up(
    node: str,
    blob: Path,
    ops: LpOps,
    worker: BlockingWorker,
    report: Callable[[FirmwareStatus], None],
    timings: FirmwareTimings = FirmwareTimings(),
    name: str = "",
    appeared: float | None = None,
) -> FirmwareStatus:
    """Upload `blob` to the printer at `node` until it reports FWVER, at most `attempts` times.

    `appeared` is the loop time the printer's device appeared: the settle time counts from
    there, so a blob the owner provides long after the plug-in goes out at once (None: wait
    the whole settle time). Returns the final status: 'loaded', 'needs-firmware' (no blob:
    wait for the owner) or 'error' (it never took). `report` hears every intermediate state
    and the progress."""
    name = name or node
    if not blob.is_file():
        detail = f"needs {blob.name} in {blob.parent}"
        log.warning("%s: %s (upload it on the web page, or copy it there and send SIGHUP)",
                    name, detail)
        return FirmwareStatus("needs-firmware", detail, blob=blob)
    loop = asyncio.get_running_loop()
    since = loop.time() - appeared if appeared is not None else 0.0
    await asyncio.sleep(max(0.0, timings.settle - since))
    last_error = ""
    for attempt in range(1, timings.attempts + 1):
        detail = f"uploading {blob.name} (attempt {attempt} of {timings.attempts})"
        report(FirmwareStatus("uploading-firmware", detail, 0.0, blob=blob))
        try:
            device_id = await _upload_once(node, blob, ops, worker, timings, name, attempt,
                                           lambda p, d=detail: report(FirmwareStatus(
                                               "uploading-firmware", d, p, blob=blob)))
        except UploadFailed as err:
            last_error = str(err)
            log.warning("%s: firmware attempt %d of %d failed: %s", name, attempt,
                        timings.attempts, last_error)
            continue
        return FirmwareStatus("loaded", "", None, device_id, blob)
    detail = (f"firmware {blob.name} did not take after {timings.attempts} attempts "
              f"({last_error})")
    log.error("%s: %s", name, detail)
    return FirmwareStatus("error", detail, blob=blob)


async def _upload_once(
    node: str,
    blob: Path,
    ops: LpOps,
    worker: BlockingWorker,
    timings: FirmwareTimings,
    name: str,
    attempt: int,
    progress: Callable[[float], None],
) -> str:
    try:
        fd = await open_when_ready(ops, node, timings.open_patience)
    except OSError as err:
        _raise_if_gone(err)
        raise UploadFailed(f"cannot open {node}: {os.strerror(err.errno or 0)}") from err
    channel = PollingChannel(fd, can_read=False)
    try:
        loaded = await _read_loaded_id(ops, worker, fd)
        if loaded:  # another uploader got there first, or the last attempt took late
            log.info("%s: firmware already running (FWVER %s)", name,
                     parse_device_id(loaded)["FWVER"])
            return loaded
        log.info("%s: sending %s (attempt %d of %d)", name, blob.name, attempt, timings.attempts)
        started = asyncio.get_running_loop().time()
        size = await _send(channel, blob, timings, progress)
        log.info("%s: sent %s (%d bytes) in %.1f s, waiting for the printer to start it",
                 name, blob.name, size, asyncio.get_running_loop().time() - started)
        return await _wait_for_fwver(ops, worker, fd, timings)
    finally:
        with contextlib.suppress(OSError):
            channel.close(completed=True)


async def _send(channel: PollingChannel, blob: Path, timings: FirmwareTimings,
                progress: Callable[[float], None]) -> int:
    """Stream the file in chunks from the event loop; the fd is non-blocking, so a slow printer
    never blocks the daemon."""
    try:
        handle = blob.open("rb")
    except OSError as err:
        raise UploadFailed(f"cannot read {blob}: {err.strerror}") from err
    with handle:
        size = os.fstat(handle.fileno()).st_size
        sent = 0
        while chunk := handle.read(timings.chunk):
            try:
                async with asyncio.timeout(timings.write_timeout):
                    await channel.write(memoryview(chunk))
            except TimeoutError:
                raise UploadFailed(f"the printer took no data for {timings.write_timeout:g} s "
                                   f"after {sent} bytes") from None
            except DeviceError as err:
                _raise_if_gone(err.__cause__)
                raise UploadFailed(str(err)) from err
            sent += len(chunk)
            progress(sent / size if size else 1.0)
        try:
            async with asyncio.timeout(timings.write_timeout):
                await channel.flush()
        except TimeoutError:
            raise UploadFailed("the printer did not take the last bytes") from None
    return sent


async def _wait_for_fwver(ops: LpOps, worker: BlockingWorker, fd: int,
                          timings: FirmwareTimings) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timings.id_timeout
    while True:
        loaded = await _read_loaded_id(ops, worker, fd)
        if loaded:
            return loaded
        if loop.time() >= deadline:
            raise UploadFailed(f"no FWVER in its device ID after {timings.id_timeout:g} s")
        await asyncio.sleep(timings.id_interval)


async def _read_loaded_id(ops: LpOps, worker: BlockingWorker, fd: int) -> str:
    """The fresh device ID if it carries FWVER, else ''. The worker gets a dup() of `fd`: the
    upload keeps its own, and closes it even if this read is abandoned."""
    try:
        device_id = await worker.query_fd(os.dup(fd), ops.device_id)
    except OSError as err:
        _raise_if_gone(err)
        return ""
    return device_id if has_firmware_version(parse_device_id(device_id)) else ""


def _raise_if_gone(err: BaseException | None) -> None:
    if isinstance(err, OSError) and err.errno in (errno.ENODEV, errno.ENOENT, errno.ENXIO):
        raise DeviceGone(str(err)) from err
