"""Firmware for host-based HP LaserJets: the model table and the bring-up state machine."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
from pathlib import Path

import pytest
from test_usb_fakes import FakeLp, FakeOps

from usbprintd.usb.firmware import (
    FIRMWARE_MODELS,
    DeviceGone,
    FirmwareStatus,
    FirmwareTimings,
    blob_name_for,
    bring_up,
    firmware_model,
)
from usbprintd.usb.worker import BlockingWorker

FAST = FirmwareTimings(settle=0, chunk=16 * 1024, write_timeout=0.5, id_interval=0.01,
                       id_timeout=0.2, attempts=3, open_patience=0.1)
NODE = "/dev/usb/lp0"


@pytest.mark.parametrize(("usb_id", "blob"), [
    ("03f0:0517", "sihp1000.dl"), ("03f0:1317", "sihp1005.dl"), ("03f0:4117", "sihp1018.dl"),
    ("03f0:2b17", "sihp1020.dl"), ("03f0:3d17", "sihpP1005.dl"), ("03f0:3e17", "sihpP1006.dl"),
    ("03f0:4817", "sihpP1005.dl"), ("03f0:4917", "sihpP1006.dl"), ("03f0:3f17", "sihpP1505.dl"),
])
def test_model_table(usb_id, blob):
    assert firmware_model(usb_id).blob == blob
    assert firmware_model(usb_id.upper()).blob == blob


def test_table_has_exactly_the_known_models():
    assert len({m.usb_id for m in FIRMWARE_MODELS}) == len(FIRMWARE_MODELS) == 9


def test_blob_name_comes_from_the_section_then_the_table():
    assert blob_name_for("03f0:4117", "") == "sihp1018.dl"
    assert blob_name_for("03f0:4117", "my1018.dl") == "my1018.dl"
    assert blob_name_for("04f9:0042", "") == ""
    assert blob_name_for("04f9:0042", "custom.dl") == "custom.dl"


def run_bring_up(printer: FakeLp, blob: Path, timings: FirmwareTimings = FAST):
    reports: list[FirmwareStatus] = []

    async def scenario():
        ops = FakeOps(lp0=printer)
        worker = BlockingWorker()
        try:
            return await bring_up(NODE, blob, ops, worker, reports.append, timings,
                                  "HP LaserJet 1018")
        finally:
            worker.stop()

    return asyncio.run(scenario()), reports


def make_blob(directory: Path, size: int = 100_003) -> tuple[Path, bytes]:
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    blob = directory / "sihp1018.dl"
    blob.write_bytes(data)
    return blob, data


def test_blob_is_sent_whole_then_fwver_makes_it_loaded(tmp_path: Path):
    blob, data = make_blob(tmp_path)
    printer = FakeLp(firmware_size=len(data))
    result, reports = run_bring_up(printer, blob)
    assert result.loaded
    assert "FWVER:20041006" in result.device_id
    assert bytes(printer.received) == data
    progress = [r.progress for r in reports]
    assert reports[0].state == "uploading-firmware" and progress[0] == 0.0
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(progress) >= 1 + len(data) // FAST.chunk  # reported while it streams
    assert printer.fd is None or not printer.is_open  # the device is released for jobs


def test_missing_blob_says_which_file_and_where(tmp_path: Path):
    printer = FakeLp(firmware_size=10)
    result, reports = run_bring_up(printer, tmp_path / "sihp1018.dl")
    assert result.state == "needs-firmware"
    assert result.detail == f"needs sihp1018.dl in {tmp_path}"
    assert printer.opens == 0 and reports == []


def test_upload_that_never_takes_is_retried_then_an_error(tmp_path: Path):
    blob, data = make_blob(tmp_path, 20_001)
    printer = FakeLp(firmware_size=len(data), takes_firmware=False)
    result, reports = run_bring_up(printer, blob)
    assert result.state == "error"
    assert "did not take after 3 attempts" in result.detail
    assert "no FWVER" in result.detail
    assert len(printer.received) == 3 * len(data)
    assert [r.detail for r in reports if r.progress == 0.0] == [
        f"uploading sihp1018.dl (attempt {n} of 3)" for n in (1, 2, 3)]


def test_firmware_already_running_is_not_sent_again(tmp_path: Path):
    blob, _ = make_blob(tmp_path, 5000)
    printer = FakeLp(firmware_loaded=True)
    result, _ = run_bring_up(printer, blob)
    assert result.loaded and printer.received == b""


def test_printer_that_takes_no_data_fails_the_attempt(tmp_path: Path):
    blob, _ = make_blob(tmp_path, 300_001)
    printer = FakeLp(stalled=True)
    timings = FirmwareTimings(settle=0, write_timeout=0.1, attempts=1, open_patience=0.1)
    result, _ = run_bring_up(printer, blob, timings)
    assert result.state == "error"
    assert "took no data" in result.detail


def test_busy_device_is_retried_before_giving_up_an_attempt(tmp_path: Path):
    blob, data = make_blob(tmp_path, 9000)
    printer = FakeLp(firmware_size=len(data), open_errors=[errno.EBUSY, errno.EBUSY])
    result, _ = run_bring_up(printer, blob)
    assert result.loaded and printer.opens == 1


def test_printer_unplugged_during_bring_up_is_reported_as_gone(tmp_path: Path):
    blob, _ = make_blob(tmp_path, 9000)
    printer = FakeLp(open_errors=[errno.ENODEV])
    with pytest.raises(DeviceGone):
        run_bring_up(printer, blob)


def test_device_id_reads_run_off_the_event_loop(tmp_path: Path):
    blob, data = make_blob(tmp_path, 9000)
    printer = FakeLp(firmware_size=len(data), ioctl_delay=0.3)
    ticks: list[float] = []

    async def tick():
        while True:
            ticks.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.02)

    async def scenario():
        ticker = asyncio.get_running_loop().create_task(tick())
        worker = BlockingWorker()
        try:
            return await bring_up(NODE, blob, FakeOps(lp0=printer), worker, lambda _: None,
                                  FAST, "HP LaserJet 1018")
        finally:
            ticker.cancel()
            worker.stop()

    assert asyncio.run(scenario()).loaded
    assert printer.ioctl_threads == {"usb-calls"}
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2


def test_unplug_while_a_device_id_read_blocks_releases_the_device(tmp_path: Path):
    blob, data = make_blob(tmp_path, 9000)
    printer = FakeLp(firmware_size=len(data), takes_firmware=False, ioctl_delay=0.3)

    async def scenario():
        worker = BlockingWorker()
        try:
            upload = asyncio.get_running_loop().create_task(
                bring_up(NODE, blob, FakeOps(lp0=printer), worker, lambda _: None, FAST))
            await asyncio.to_thread(printer.ioctl_started.wait, 2)
            upload.cancel()  # what the remove event does to the printer's task
            with pytest.raises(asyncio.CancelledError):
                await upload
            await asyncio.sleep(0.5)  # the read comes back to nobody
            assert not printer.is_open  # the upload's fd and the worker's dup are both closed
        finally:
            worker.stop()

    asyncio.run(scenario())


def test_default_settle_is_the_3_s_foo2zjs_and_hplip_wait():
    assert FirmwareTimings().settle == 3.0


@pytest.mark.parametrize(("appeared_ago", "min_wait", "max_wait"), [
    (None, 0.4, 2.0),  # not known: the whole settle time
    (0.0, 0.4, 2.0),  # just plugged in
    (0.3, 0.1, 0.25),  # plugged in a while ago: only the rest of it
    (5.0, 0.0, 0.1),  # the owner's blob arrived long after the plug-in: at once
])
def test_settle_time_counts_from_when_the_printer_appeared(tmp_path: Path, appeared_ago,
                                                           min_wait, max_wait, caplog):
    blob, data = make_blob(tmp_path, 9000)
    printer = FakeLp(firmware_size=len(data))
    timings = FirmwareTimings(settle=0.4, chunk=16 * 1024, write_timeout=0.5, id_interval=0.01,
                              id_timeout=0.5, attempts=1, open_patience=0.1)

    async def scenario():
        loop = asyncio.get_running_loop()
        now = loop.time()
        appeared = None if appeared_ago is None else now - appeared_ago
        worker = BlockingWorker()
        try:
            result = await bring_up(NODE, blob, FakeOps(lp0=printer), worker, lambda _: None,
                                    timings, "HP LaserJet 1018", appeared)
        finally:
            worker.stop()
        return result, printer.first_open - now

    with caplog.at_level(logging.INFO, "usbprintd"):
        result, waited = asyncio.run(scenario())
    assert result.loaded
    assert min_wait <= waited < max_wait
    assert "HP LaserJet 1018: sending sihp1018.dl (attempt 1 of 1)" in caplog.text
