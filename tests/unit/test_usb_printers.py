"""The set of present USB printers against a real Registry: sections follow identity, autoadd
writes once, status and firmware reach the printer's state, unplug ends the server."""

from __future__ import annotations

import asyncio
import copy
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_usb_fakes import HP_1018_ID, FakeLp, FakeOps

from usbprintd.registry import Registry
from usbprintd.uci import AddSection, DeleteOption, DeleteSection, SetOption, UciSection
from usbprintd.usb.firmware import FirmwareTimings
from usbprintd.usb.identity import UsbIdentity
from usbprintd.usb.manager import FoundPrinter, UsbPrinters
from usbprintd.usb.printer import PrinterTimings, UsbPrinter
from usbprintd.usb.worker import BlockingWorker

FAST = PrinterTimings(open_patience=0.5, status_interval=0.02,
                      firmware=FirmwareTimings(settle=0, chunk=8192, write_timeout=1,
                                               id_interval=0.01, id_timeout=0.3, attempts=2,
                                               open_patience=0.3))
BROTHER_ID = "MFG:Brother;CMD:PJL,PCL,PCLXL;MDL:HL-L2350DW series;CLS:PRINTER;"


class MemoryStore:
    """A UCI package in memory, counting writes (flash is precious)."""

    description = "memory"

    def __init__(self, sections: list[UciSection]) -> None:
        self.sections = sections
        self.writes = 0

    def load(self) -> list[UciSection]:
        return copy.deepcopy(self.sections)

    def apply(self, changes) -> None:
        self.writes += 1
        for change in changes:
            if isinstance(change, AddSection):
                self.sections.append(UciSection(change.type, change.name, {}))
            elif isinstance(change, DeleteSection):
                self.sections = [s for s in self.sections if s.name != change.name]
            elif isinstance(change, SetOption):
                self._section(change.section).options[change.option] = change.value
            elif isinstance(change, DeleteOption):
                self._section(change.section).options.pop(change.option, None)

    def _section(self, name: str) -> UciSection:
        return next(s for s in self.sections if s.name == name)


def free_port(count: int = 1) -> int:
    """A port such that it and the `count - 1` after it are free (autoadd counts upwards)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if all(_free(p) for p in range(port + 1, port + count)):
            return port


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::", port))
        except OSError:
            return False
    return True


def settings(base_port: int, **options: str) -> UciSection:
    return UciSection("usbprintd", "main", {"base_port": str(base_port), "web_port": "0",
                                             "mdns": "0", "log_level": "debug", **options})


def printer_section(section: str, port: int, **options: str) -> UciSection:
    return UciSection("printer", section, {"port": str(port), "bind": "127.0.0.1", **options})


def found(node: str, serial: str = "", path: str = "1-1", pid: str = "4117",
          protocol: int = 2, vid: str = "03f0") -> FoundPrinter:
    identity = UsbIdentity(vid, pid, serial=serial, usb_path=path, protocol=protocol,
                           manufacturer="Hewlett-Packard", product="HP LaserJet 1018")
    return FoundPrinter(f"/devices/usb1/{path}/{path}:1.0/usbmisc/{node}",
                        f"/dev/usb/{node}", identity)


async def until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await asyncio.sleep(0.01)


def accepts(port: int) -> bool:
    """The port takes connections. The job a probe starts fails at once (there is no real
    /dev/usb/lpN here) and may reset the connection before connect() returns: still accepted."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionResetError:
        return True
    except OSError:
        return False


async def accepting(port: int) -> bool:
    return await asyncio.to_thread(accepts, port)


class World:
    def __init__(self, sections: list[UciSection], ops: FakeOps) -> None:
        self.store = MemoryStore(sections)
        self.registry = Registry(self.store)
        self.registry.reload()
        self.ops = ops
        self.worker = BlockingWorker()
        self.printers = UsbPrinters(self.registry, ops, self.worker, FAST)

    def state(self, section: str) -> str:
        return self.registry.printer_state(section)

    def attachment(self, section: str):
        return self.registry.usb_attachments.get(section)

    async def close(self) -> None:
        await self.printers.stop()
        self.worker.stop()
        await self.registry.shutdown()


def run(sections: list[UciSection], ops: FakeOps, scenario) -> None:
    async def main():
        world = World(sections, ops)
        try:
            await scenario(world)
        finally:
            await world.close()

    asyncio.run(main())


def test_configured_printer_is_served_on_its_port_and_unplug_closes_it():
    port = free_port()
    ops = FakeOps(lp0=FakeLp(device_id=HP_1018_ID + "FWVER:20041006;"))

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("office") == "serving")
        assert await accepting(port)
        usb = w.attachment("office").usb
        assert (usb["usb_id"], usb["serial"]) == ("03f0:4117", "AAA")
        assert usb["device_id"].startswith(HP_1018_ID)
        w.printers.remove(found("lp0", serial="AAA").devpath)
        assert w.state("office") == "absent"
        assert not await accepting(port)

    run([settings(port + 10), printer_section("office", port, usb_id="03f0:4117",
                                              serial="AAA")], ops, scenario)


def test_autoadd_writes_one_section_per_new_printer_with_model_defaults():
    base = free_port(2)
    ops = FakeOps(lp0=FakeLp(device_id=BROTHER_ID), lp1=FakeLp(device_id=BROTHER_ID))

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="B1", vid="04f9", pid="0042"))
        await until(lambda: w.registry.config.printers)
        w.printers.add(found("lp1", serial="B2", path="1-2", vid="04f9", pid="0042"))
        await until(lambda: len(w.registry.config.printers) == 2)
        first, second = w.registry.config.printers
        assert (first.name, first.serial, first.port) == ("Brother HL-L2350DW series", "B1", base)
        assert (second.name, second.serial, second.port) == (
            "Brother HL-L2350DW series (2)", "B2", base + 1)
        assert first.usb_id == "04f9:0042" and first.bidirectional and first.firmware == ""
        assert w.store.writes == 2
        await until(lambda: w.state(second.section) == "serving")
        # unplug and replug: known now, no further write
        for node, serial, path in (("lp0", "B1", "1-1"), ("lp1", "B2", "1-2")):
            w.printers.remove(found(node, serial, path, "0042", vid="04f9").devpath)
        w.printers.add(found("lp0", serial="B2", path="1-2", vid="04f9", pid="0042"))
        await until(lambda: w.state(second.section) == "serving")
        assert w.store.writes == 2 and w.state(first.section) == "absent"

    run([settings(base)], ops, scenario)


def test_host_based_laserjet_without_serial_is_added_by_port_path_unidirectional(tmp_path):
    base = free_port()
    ops = FakeOps(lp0=FakeLp(device_id=HP_1018_ID + "FWVER:20041006;"))

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="", path="1-1.3"))
        await until(lambda: w.registry.config.printers)
        [added] = w.registry.config.printers
        assert (added.name, added.usb_path, added.serial) == ("HP LaserJet 1018", "1-1.3", "")
        assert added.bidirectional is False and added.firmware == "sihp1018.dl"
        await until(lambda: w.state(added.section) == "serving")

    run([settings(base, firmware_dir=str(tmp_path))], ops, scenario)


def test_two_printers_of_one_model_keep_their_ports_whatever_the_plug_order():
    a_port, b_port = free_port(), free_port()
    ops = FakeOps(lp0=FakeLp(), lp1=FakeLp())
    sections = [settings(free_port()),
                printer_section("a", a_port, usb_id="03f0:4117", serial="AAA",
                                firmware="none.dl"),
                printer_section("b", b_port, usb_id="03f0:4117", serial="BBB",
                                firmware="none.dl")]
    for printer in ops.printers.values():
        printer.firmware_loaded = True

    async def scenario(w: World):
        a, b = found("lp0", "AAA", "1-1"), found("lp1", "BBB", "1-2")
        w.printers.add(a)
        w.printers.add(b)
        await until(lambda: w.state("a") == w.state("b") == "serving")
        assert w.attachment("a").device_path == "/dev/usb/lp0"
        w.printers.remove(a.devpath)
        w.printers.remove(b.devpath)
        # other order, and the kernel numbers them the other way round
        w.printers.add(found("lp0", "BBB", "1-2"))
        w.printers.add(found("lp1", "AAA", "1-1"))
        await until(lambda: w.state("a") == w.state("b") == "serving")
        assert w.attachment("a").device_path == "/dev/usb/lp1"
        assert w.attachment("b").device_path == "/dev/usb/lp0"
        assert await accepting(a_port) and await accepting(b_port)

    run(sections, ops, scenario)


def test_unconfigured_printer_without_autoadd_is_listed_as_unserved(caplog):
    ops = FakeOps(lp0=FakeLp())

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.registry.unserved_usb)
        [entry] = w.registry.snapshot()["unserved_usb"]
        assert entry["usb_id"] == "03f0:4117" and entry["name"] == "HP LaserJet 1018"
        assert "autoadd is off" in entry["reason"]
        assert w.store.writes == 0
        w.printers.remove(found("lp0", serial="AAA").devpath)
        assert w.registry.unserved_usb == ()

    with caplog.at_level(logging.WARNING, "usbprintd"):
        run([settings(free_port(), autoadd="0")], ops, scenario)
    assert "HP LaserJet 1018 (03f0:4117, serial AAA) at /dev/usb/lp0 is not served" in caplog.text


def test_owner_adding_a_section_later_serves_the_waiting_printer():
    port = free_port()
    ops = FakeOps(lp0=FakeLp(firmware_loaded=True))

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.registry.unserved_usb)
        w.store.sections.append(printer_section("later", port, usb_id="03f0:4117"))
        w.registry.reload()
        await until(lambda: w.state("later") == "serving")
        assert w.registry.unserved_usb == ()

    run([settings(free_port(), autoadd="0")], ops, scenario)


def test_paper_out_shows_in_the_state_and_the_log_then_clears(caplog):
    port = free_port()
    lp = FakeLp(firmware_loaded=True)
    ops = FakeOps(lp0=lp)

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("office") == "serving")
        lp.status = 0x30
        await until(lambda: w.state("office") == "paper-out")
        assert w.attachment("office").ready  # jobs still queue; the printer just waits
        lp.status = 0x18
        await until(lambda: w.state("office") == "serving")
        lp.status = 0x08
        await until(lambda: w.state("office") == "offline")

    with caplog.at_level(logging.INFO, "usbprintd"):
        run([settings(free_port()), printer_section("office", port, name="Office 1018",
                                                    usb_id="03f0:4117")], ops, scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "usbprintd.usb.printer"]
    assert lines[-3:] == ["Office 1018: paper out", "Office 1018: online",
                          "Office 1018: off-line"]


def test_missing_firmware_keeps_the_port_closed_until_the_blob_arrives(tmp_path: Path):
    port = free_port()
    blob = bytes(range(256)) * 200 + b"tail"
    lp = FakeLp(firmware_size=len(blob))
    ops = FakeOps(lp0=lp)

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("laser") == "needs-firmware")
        assert w.attachment("laser").detail == f"needs sihp1018.dl in {tmp_path}"
        assert not w.attachment("laser").ready and not await accepting(port)
        (tmp_path / "sihp1018.dl").write_bytes(blob)
        w.registry.firmware_changed()  # what the web upload and SIGHUP do
        await until(lambda: w.state("laser") == "serving")
        assert bytes(lp.received) == blob
        assert w.attachment("laser").usb["firmware_version"] == "20041006"
        assert await accepting(port)

    run([settings(free_port(), firmware_dir=str(tmp_path)),
         printer_section("laser", port, usb_id="03f0:4117")], ops, scenario)


def test_power_cycled_printer_gets_its_firmware_again(tmp_path: Path):
    blob = b"F" * 20_000
    (tmp_path / "sihp1018.dl").write_bytes(blob)
    lp = FakeLp(firmware_size=len(blob))
    ops = FakeOps(lp0=lp)

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("laser") == "serving")
        w.printers.remove(found("lp0", serial="AAA").devpath)
        lp.firmware_loaded = False  # power off forgets it
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("laser") == "serving")
        assert len(lp.received) == 2 * len(blob)

    run([settings(free_port(), firmware_dir=str(tmp_path)),
         printer_section("laser", free_port(), usb_id="03f0:4117")], ops, scenario)


def test_failed_bring_up_is_an_error_until_a_new_blob(tmp_path: Path):
    (tmp_path / "sihp1018.dl").write_bytes(b"bad" * 1000)
    lp = FakeLp(firmware_size=3000, takes_firmware=False)
    ops = FakeOps(lp0=lp)

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("laser") == "error")
        assert "did not take after 2 attempts" in w.attachment("laser").detail
        lp.takes_firmware = True
        w.registry.firmware_changed()
        await until(lambda: w.state("laser") == "serving")

    run([settings(free_port(), firmware_dir=str(tmp_path)),
         printer_section("laser", free_port(), usb_id="03f0:4117")], ops, scenario)


def test_node_that_appears_late_or_busy_is_retried():
    ops = FakeOps(lp0=FakeLp(firmware_loaded=True, open_errors=[errno.ENOENT, errno.EACCES,
                                                                 errno.EBUSY]))

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("office") == "serving")

    run([settings(free_port()), printer_section("office", free_port(), usb_id="03f0:4117")],
        ops, scenario)


def test_node_that_never_opens_is_an_error_with_the_reason_until_it_opens():
    ops = FakeOps()  # no such node yet

    async def scenario(w: World):
        w.printers.add(found("lp0", serial="AAA"))
        await until(lambda: w.state("office") == "error", timeout=5)
        assert w.attachment("office").detail == (
            "cannot open /dev/usb/lp0: No such file or directory")
        assert not w.attachment("office").ready
        ops.printers["/dev/usb/lp0"] = FakeLp(firmware_loaded=True)
        await until(lambda: w.state("office") == "serving")
        assert w.attachment("office").usb["device_id"].startswith(HP_1018_ID)

    run([settings(free_port()), printer_section("office", free_port(), usb_id="03f0:4117")],
        ops, scenario)


def test_rescan_converges_on_what_is_present():
    ops = FakeOps(lp0=FakeLp(firmware_loaded=True), lp1=FakeLp(firmware_loaded=True))
    sections = [settings(free_port()),
                printer_section("a", free_port(), usb_id="03f0:4117", serial="AAA"),
                printer_section("b", free_port(), usb_id="03f0:4117", serial="BBB")]

    async def scenario(w: World):
        w.printers.sync([found("lp0", "AAA", "1-1"), found("lp1", "BBB", "1-2")])
        await until(lambda: w.state("a") == w.state("b") == "serving")
        w.printers.sync([found("lp1", "BBB", "1-2")])  # lp0's remove event was lost
        assert w.state("a") == "absent" and w.state("b") == "serving"

    run(sections, ops, scenario)


# --- status reads never touch a device while job data streams --------------------------------


class Host:
    def __init__(self, server) -> None:
        self.server = server
        self.changes = 0

    def settings_for(self, printer):
        return None

    def firmware_dir(self):
        return Path("/nonexistent")

    def server_for(self, printer):
        return self.server

    def identified(self, printer):
        pass

    def changed(self, printer):
        self.changes += 1


def lone_printer(server, ops: FakeOps, worker: BlockingWorker) -> UsbPrinter:
    return UsbPrinter("/x", "/dev/usb/lp0", UsbIdentity("03f0", "4117"), Host(server), ops,
                      worker)


def read_status(server, ops: FakeOps):
    """One status read of a printer at /dev/usb/lp0 with `server` as its print server."""
    async def scenario():
        worker = BlockingWorker()
        try:
            return await lone_printer(server, ops, worker)._read_status()
        finally:
            worker.stop()

    return asyncio.run(scenario())


@pytest.mark.parametrize(("server", "expect_read", "expect_opens"), [
    (None, True, 1),  # between jobs: a brief open of its own
    (SimpleNamespace(active=None, channel_fd=None), True, 1),
    (SimpleNamespace(active=object(), channel_fd=None), False, 0),  # streaming: hands off
])
def test_status_is_read_only_when_safe(server, expect_read, expect_opens):
    lp = FakeLp()
    assert (read_status(server, FakeOps(lp0=lp)) is not None) is expect_read
    assert (lp.opens, lp.status_reads) == (expect_opens, int(expect_read))
    assert not lp.is_open  # the brief open is closed again


def test_stalled_job_status_goes_through_the_jobs_fd():
    async def scenario():
        lp = FakeLp(status=0x30)
        ops = FakeOps(lp0=lp)
        job_fd = ops.open("/dev/usb/lp0")  # the job holds the device
        server = SimpleNamespace(active=object(), channel_fd=job_fd)
        worker = BlockingWorker()
        try:
            assert await lone_printer(server, ops, worker)._read_status() == 0x30
        finally:
            worker.stop()
        assert lp.opens == 1
        os.fstat(job_fd)  # the job's own fd is still open: the worker closed only its dup
        os.close(job_fd)

    asyncio.run(scenario())


def test_busy_device_between_jobs_skips_the_status_read():
    lp = FakeLp()
    ops = FakeOps(lp0=lp)

    async def scenario():
        fd = ops.open("/dev/usb/lp0")  # someone else has it
        worker = BlockingWorker()
        try:
            assert await lone_printer(None, ops, worker)._read_status() is None
        finally:
            worker.stop()
            os.close(fd)

    asyncio.run(scenario())
    assert lp.status_reads == 0


# --- a wedged printer never holds up the event loop -------------------------------------------


async def ticking(ticks: list[float], interval: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    while True:
        ticks.append(loop.time())
        await asyncio.sleep(interval)


def test_event_loop_keeps_running_while_a_status_query_blocks():
    lp = FakeLp(status=0x30, ioctl_delay=1.0)
    ops = FakeOps(lp0=lp)

    async def scenario():
        loop = asyncio.get_running_loop()
        ticks: list[float] = []
        ticker = loop.create_task(ticking(ticks))
        worker = BlockingWorker()
        try:
            started = loop.time()
            assert await lone_printer(None, ops, worker)._read_status() == 0x30
            finished = loop.time()
        finally:
            ticker.cancel()
            worker.stop()
        assert finished - started >= 1.0  # the query really blocked for its second
        during = [t for t in ticks if started <= t <= finished]
        assert len(during) >= 25  # ~50 at 20 ms: the loop ran all along
        assert max(b - a for a, b in pairwise(during)) < 0.5

    asyncio.run(scenario())
    assert lp.ioctl_threads == {"usb-calls"}


def test_status_answer_after_a_job_started_is_dropped():
    lp = FakeLp(status=0x30, ioctl_delay=0.3)
    ops = FakeOps(lp0=lp)
    server = SimpleNamespace(active=None, channel_fd=None)

    async def scenario():
        worker = BlockingWorker()
        try:
            read = asyncio.get_running_loop().create_task(
                lone_printer(server, ops, worker)._read_status())
            await asyncio.to_thread(lp.ioctl_started.wait, 2)
            server.active = object()  # a job took the printer while the answer was on its way
            assert await read is None
        finally:
            worker.stop()

    asyncio.run(scenario())
    assert lp.status_reads == 1


def test_status_query_of_a_stalled_job_survives_the_job_closing_its_fd_and_the_number_reused():
    lp = FakeLp(status=0x30, ioctl_delay=0.3)
    ops = FakeOps(lp0=lp)

    async def scenario():
        job_fd = ops.open("/dev/usb/lp0")
        server = SimpleNamespace(active=object(), channel_fd=job_fd)
        worker = BlockingWorker()
        try:
            read = asyncio.get_running_loop().create_task(
                lone_printer(server, ops, worker)._read_status())
            assert await asyncio.to_thread(lp.ioctl_started.wait, 2)  # the printer is slow
            os.close(job_fd)  # the job ends meanwhile; its fd number goes to someone else
            reused = os.open(os.devnull, os.O_RDONLY)
            assert reused == job_fd
            try:
                assert await read == 0x30  # asked through the worker's own dup
            finally:
                os.close(reused)
        finally:
            worker.stop()
        assert lp.status_reads == 1
        await until(lambda: not lp.is_open)  # the dup was the last reference; it is closed

    asyncio.run(scenario())


@pytest.mark.parametrize("during_a_job", [False, True])
def test_no_status_read_waits_behind_a_slow_printer_holding_the_device(during_a_job):
    """usblp allows one opener: an fd queued behind another printer's slow call would keep
    this printer's device from its next job for as long as that call takes."""
    lp = FakeLp(status=0x30)
    ops = FakeOps(lp0=lp)
    gate = threading.Event()

    async def scenario():
        job_fd = ops.open("/dev/usb/lp0") if during_a_job else None
        server = SimpleNamespace(active=object() if during_a_job else None, channel_fd=job_fd)
        worker = BlockingWorker()
        opens = lp.opens
        try:
            slow = asyncio.get_running_loop().create_task(worker.call(lambda: gate.wait(5)))
            await until(lambda: worker.busy)
            assert await lone_printer(server, ops, worker)._read_status() is None
            assert lp.opens == opens and lp.status_reads == 0
            if during_a_job:
                os.close(job_fd)
                await until(lambda: not lp.is_open)  # no dup left holding the device
            gate.set()
            assert await slow
            assert not worker.busy
            assert await lone_printer(SimpleNamespace(active=None, channel_fd=None), ops,
                                      worker)._read_status() == 0x30
        finally:
            gate.set()
            worker.stop()

    asyncio.run(scenario())


def test_status_answer_arriving_after_unplug_is_dropped(caplog):
    port = free_port()
    lp = FakeLp(firmware_loaded=True)
    ops = FakeOps(lp0=lp)
    printer = found("lp0", serial="AAA")

    async def scenario(w: World):
        w.printers.add(printer)
        await until(lambda: w.state("office") == "serving")
        lp.ioctl_started.clear()
        lp.status, lp.ioctl_delay = 0x30, 1.0  # wedged, and its answer would say paper out
        await asyncio.to_thread(lp.ioctl_started.wait, 2)
        reported = w.attachment("office")
        w.printers.remove(printer.devpath)
        assert w.state("office") == "absent"
        await asyncio.sleep(1.3)  # the answer arrives now, to nobody
        assert w.state("office") == "absent" and w.attachment("office") is None
        assert reported.state == "online"
        assert not lp.is_open  # the query's fd was closed

    with caplog.at_level(logging.DEBUG, "usbprintd"):
        run([settings(free_port()), printer_section("office", port, name="Office",
                                                    usb_id="03f0:4117")], ops, scenario)
    assert "paper out" not in caplog.text
    assert "Traceback" not in caplog.text and "handling stopped" not in caplog.text
