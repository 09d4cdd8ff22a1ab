"""DNS-SD records for served printers, and the announcers that publish them."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from usbprintd.announce import (
    SERVICE_TYPE,
    AnnounceService,
    NullAnnouncer,
    Platform,
    PrinterAnnouncement,
    ServiceRecord,
    UmdnsAnnouncer,
    _Publisher,
    admin_url,
    announced_printers,
    choose_announcer,
    instance_name,
    pdl_mime_types,
    service_records,
)
from usbprintd.config import Config, GlobalSettings, PrinterSettings
from usbprintd.reconcile import Attachment

# Device IDs as real printers report them (LPIOC_GET_DEVICE_ID / sysfs ieee1284_id).
LASERJET_1020_LOADED = ("MFG:Hewlett-Packard;MDL:HP LaserJet 1020;CMD:ACL;CLS:PRINTER;"
                        "DES:HP LaserJet 1020;FWVER:20041129;")
LASERJET_1018_NO_FIRMWARE = ("MFG:Hewlett-Packard;MDL:HP LaserJet 1018;CMD:ACL;CLS:PRINTER;"
                             "DES:HP LaserJet 1018")
LASERJET_1320 = ("MFG:Hewlett-Packard;CMD:PJL,MLC,BIDI-ECP,PCL,POSTSCRIPT,PCLXL;"
                 "MDL:hp LaserJet 1320 series;CLS:PRINTER;"
                 "DES:Hewlett-Packard LaserJet 1320 series;MEM:9MB;COMMENT:RES=1200x1;")
OFFICEJET_K5400 = "MFG:HP;MDL:Officejet Pro K5400;CMD:MLC,PCL,PML,DW-PCL,DESKJET,DYN;"


def keys_of(device_id: str) -> dict[str, str]:
    """The split the USB layer hands over: upper-case keys, values as sent."""
    pairs = (item.split(":", 1) for item in device_id.split(";") if ":" in item)
    return {key.strip().upper(): value for key, value in pairs}


def announcement(device_id: str, name: str = "", port: int = 9100, **extra) -> PrinterAnnouncement:
    keys = keys_of(device_id)
    return PrinterAnnouncement(name=name or keys["MDL"], port=port, hostname="OpenWrt",
                               device_id=keys, **extra)


# --- pure record building -----------------------------------------------------------------------


def test_host_based_printer_is_announced_as_raw_data() -> None:
    assert pdl_mime_types("ACL") == ("application/octet-stream",)


def test_pdl_lists_page_languages_in_printer_order_without_job_languages_or_repeats() -> None:
    cmd = keys_of(LASERJET_1320)["CMD"]
    assert pdl_mime_types(cmd) == ("application/vnd.hp-PCL", "application/postscript")


def test_pdl_maps_pdf_and_falls_back_to_raw_for_unknown_languages() -> None:
    assert pdl_mime_types("PDF, ZJS") == ("application/pdf", "application/octet-stream")
    assert pdl_mime_types("") == ("application/octet-stream",)
    assert pdl_mime_types("PJL") == ("application/octet-stream",)


def test_record_for_laserjet_1020_has_every_bonjour_printing_key() -> None:
    printer = announcement(LASERJET_1020_LOADED, admin_url=admin_url("OpenWrt", 631))
    [record] = service_records([printer])
    assert record.instance == "HP LaserJet 1020 @ OpenWrt"
    assert record.service_type == SERVICE_TYPE == "_pdl-datastream._tcp"
    assert record.port == 9100
    assert record.txt_strings == [
        "txtvers=1",
        "qtotal=1",
        "pdl=application/octet-stream",
        "ty=HP LaserJet 1020",
        "product=(HP LaserJet 1020)",
        "note=HP LaserJet 1020",
        "priority=50",
        "usb_MFG=Hewlett-Packard",
        "usb_MDL=HP LaserJet 1020",
        "usb_CMD=ACL",
        "adminurl=http://OpenWrt.local:631/",
    ]


def test_record_for_pcl_postscript_printer_lists_both_languages() -> None:
    record = service_records([announcement(LASERJET_1320, name="Office", port=9101)])[0]
    txt = dict(record.txt)
    assert record.instance == "Office @ OpenWrt"
    assert record.port == 9101
    assert txt["pdl"] == "application/vnd.hp-PCL,application/postscript"
    assert txt["ty"] == "hp LaserJet 1320 series"
    assert txt["product"] == "(hp LaserJet 1320 series)"
    assert txt["usb_CMD"] == "PJL,MLC,BIDI-ECP,PCL,POSTSCRIPT,PCLXL"
    assert txt["note"] == "Office"
    assert "adminurl" not in txt  # no web page, no key


def test_note_is_the_location_when_one_is_known() -> None:
    record = service_records([announcement(OFFICEJET_K5400, location="Basement")])[0]
    assert dict(record.txt)["note"] == "Basement"
    assert dict(record.txt)["pdl"] == "application/vnd.hp-PCL"


def test_ty_names_the_maker_only_when_the_model_does_not() -> None:
    def ty(device_id: dict[str, str]) -> str:
        printer = PrinterAnnouncement(name="Fallback", port=9100, hostname="h",
                                      device_id=device_id)
        return dict(service_records([printer])[0].txt)["ty"]

    assert ty(keys_of(LASERJET_1018_NO_FIRMWARE)) == "HP LaserJet 1018"
    assert ty({"MFG": "Brother", "MDL": "HL-L2350DW series"}) == "Brother HL-L2350DW series"
    assert ty({"MFG": "EPSON"}) == "EPSON"
    assert ty({}) == "Fallback"


def test_a_printer_without_device_id_is_announced_by_name() -> None:
    printer = PrinterAnnouncement(name="Virtual printer", port=9100, hostname="router")
    txt = dict(service_records([printer])[0].txt)
    assert txt["ty"] == "Virtual printer"
    assert txt["product"] == "(Virtual printer)"
    assert not any(key.startswith("usb_") for key in txt)


def test_instance_names_are_made_unique_within_our_own_set() -> None:
    twins = [announcement(LASERJET_1018_NO_FIRMWARE, port=9100 + n) for n in range(3)]
    names = [r.instance for r in service_records(twins)]
    assert names == ["HP LaserJet 1018 @ OpenWrt", "HP LaserJet 1018 @ OpenWrt (2)",
                     "HP LaserJet 1018 @ OpenWrt (3)"]


def test_instance_names_differing_only_in_case_count_as_the_same_name() -> None:
    printers = [announcement(LASERJET_1018_NO_FIRMWARE, name="Office"),
                announcement(LASERJET_1018_NO_FIRMWARE, name="OFFICE", port=9101)]
    assert [r.instance for r in service_records(printers)] == ["Office @ OpenWrt",
                                                               "OFFICE @ OpenWrt (2)"]


def test_long_names_are_shortened_to_one_dns_label_keeping_the_host() -> None:
    name = "Drücker " * 20
    instance = instance_name(name, "OpenWrt", ordinal=12)
    assert len(instance.encode()) <= 63
    assert instance.endswith(" @ OpenWrt (12)")
    instance.encode().decode()  # no character was cut in half


def test_every_txt_string_fits_its_length_byte() -> None:
    long_cmd = ",".join(f"LANG{n}" for n in range(100))
    printer = PrinterAnnouncement(name="P", port=9100, hostname="h",
                                  device_id={"MFG": "M", "MDL": "X" * 400, "CMD": long_cmd})
    for text in service_records([printer])[0].txt_strings:
        assert len(text.encode()) <= 255


def test_admin_url_points_at_the_web_page_or_is_empty_when_it_is_off() -> None:
    assert admin_url("OpenWrt", 631) == "http://OpenWrt.local:631/"
    assert admin_url("OpenWrt", 80) == "http://OpenWrt.local/"
    assert admin_url("OpenWrt", 0) == ""


@pytest.mark.parametrize(("web_listen", "url"), [
    ("0.0.0.0", "http://OpenWrt.local:631/"), ("::", "http://OpenWrt.local:631/"),
    ("192.168.1.1", "http://192.168.1.1:631/"), ("fd00::1", "http://[fd00::1]:631/"),
    ("127.0.0.1", ""), ("::1", ""), ("fe80::1%br-lan", "http://OpenWrt.local:631/"),
])
def test_admin_url_is_one_the_network_can_reach(web_listen: str, url: str) -> None:
    assert admin_url("OpenWrt", 631, web_listen) == url


def test_umdns_key_changes_with_content_and_only_then() -> None:
    record = service_records([announcement(LASERJET_1020_LOADED)])[0]
    same = service_records([announcement(LASERJET_1020_LOADED)])[0]
    renamed = service_records([announcement(LASERJET_1020_LOADED, name="Hall")])[0]
    moved = service_records([announcement(LASERJET_1020_LOADED, port=9105)])[0]
    assert record.key == same.key
    assert len({record.key, renamed.key, moved.key}) == 3
    assert moved.key.startswith("usbprintd_9105_")


# --- UmdnsAnnouncer -----------------------------------------------------------------------------


@dataclass
class RecordingRunner:
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, argv) -> None:
        self.calls.append(tuple(argv))
        if self.fail:
            raise OSError(f"{argv[0]}: not found")


def umdns(tmp_path: Path, runner: RecordingRunner) -> UmdnsAnnouncer:
    return UmdnsAnnouncer(state_file=tmp_path / "run" / "mdns.json", run=runner)


def test_umdns_announcer_writes_the_services_then_republishes_and_reloads_umdns(
        tmp_path: Path) -> None:
    runner = RecordingRunner()
    announcer = umdns(tmp_path, runner)
    records = service_records([announcement(LASERJET_1020_LOADED),
                               announcement(LASERJET_1320, name="Office", port=9101)])
    announcer.update(records)
    state = json.loads((tmp_path / "run" / "mdns.json").read_text())
    assert state == {"services": [r.as_json() for r in records]}
    assert state["services"][1]["name"] == "Office @ OpenWrt"
    assert state["services"][1]["port"] == 9101
    assert state["services"][1]["type"] == "_pdl-datastream._tcp"
    assert "pdl=application/vnd.hp-PCL,application/postscript" in state["services"][1]["txt"]
    assert runner.calls == [("/etc/init.d/usbprintd", "announce"),
                            ("ubus", "call", "umdns", "reload")]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["mdns.json"]  # no temp left


def test_umdns_announcer_does_nothing_when_the_set_is_unchanged(tmp_path: Path) -> None:
    runner = RecordingRunner()
    announcer = umdns(tmp_path, runner)
    records = service_records([announcement(LASERJET_1020_LOADED)])
    announcer.update(records)
    announcer.update(list(records))
    assert len(runner.calls) == 2
    announcer.update([])
    assert json.loads((tmp_path / "run" / "mdns.json").read_text()) == {"services": []}
    assert len(runner.calls) == 4


def published_sets(tmp_path: Path, announcer: UmdnsAnnouncer, runner: RecordingRunner):
    """What umdns was told at each reload: the state file as the init script read it."""
    sets: list[list[tuple[str, int]]] = []
    publish = announcer.run

    def record(argv) -> None:
        if argv[0] == "ubus":
            state = json.loads((tmp_path / "run" / "mdns.json").read_text())
            sets.append([(s["name"], s["port"]) for s in state["services"]])
        publish(argv)

    announcer.run = record
    return sets


def test_a_changed_printer_is_withdrawn_before_it_is_announced_again(tmp_path: Path) -> None:
    """umdns sends goodbyes after announcing new keys; the goodbye must not come last."""
    runner = RecordingRunner()
    announcer = umdns(tmp_path, runner)
    office = announcement(LASERJET_1320, name="Office", port=9101)
    announcer.update(service_records([announcement(LASERJET_1020_LOADED), office]))
    sets = published_sets(tmp_path, announcer, runner)

    moved = announcement(LASERJET_1020_LOADED, port=9105)
    announcer.update(service_records([moved, office]))

    laserjet = service_records([moved])[0].instance
    assert sets == [[("Office @ OpenWrt", 9101)],
                    [(laserjet, 9105), ("Office @ OpenWrt", 9101)]]


def test_adding_or_removing_printers_needs_one_reload(tmp_path: Path) -> None:
    runner = RecordingRunner()
    announcer = umdns(tmp_path, runner)
    first = service_records([announcement(LASERJET_1020_LOADED)])
    both = service_records([announcement(LASERJET_1020_LOADED),
                            announcement(LASERJET_1320, name="Office", port=9101)])
    sets = published_sets(tmp_path, announcer, runner)
    announcer.update(first)
    announcer.update(both)
    announcer.update(first)
    assert [len(s) for s in sets] == [1, 2, 1]


@dataclass
class FlakyAnnouncer:
    """Fails its first `failures` updates; records every set it was asked to publish."""

    failures: int
    asked: list[list[str]] = field(default_factory=list)
    published: threading.Event = field(default_factory=threading.Event)
    description: str = "flaky"

    def update(self, records) -> bool:
        self.asked.append([r.instance for r in records])
        if len(self.asked) <= self.failures:
            return False
        self.published.set()
        return True

    def close(self) -> None:
        pass


def test_a_set_that_could_not_be_published_is_tried_again_until_it_is() -> None:
    announcer = FlakyAnnouncer(failures=2)
    publisher = _Publisher(lambda: announcer, retry_seconds=0.01)
    try:
        publisher.submit(service_records([announcement(LASERJET_1020_LOADED)]))
        assert announcer.published.wait(10)
    finally:
        publisher.stop()
    assert len(announcer.asked) == 3 and len({tuple(a) for a in announcer.asked}) == 1


def test_a_newer_set_replaces_the_one_waiting_for_its_retry() -> None:
    announcer = FlakyAnnouncer(failures=1)
    publisher = _Publisher(lambda: announcer, retry_seconds=3600)  # only a new set wakes it
    try:
        publisher.submit(service_records([announcement(LASERJET_1020_LOADED)]))
        deadline = time.monotonic() + 10
        while not announcer.asked and time.monotonic() < deadline:  # its first try failed
            time.sleep(0.01)
        publisher.submit(service_records([announcement(LASERJET_1320, name="Office")]))
        assert announcer.published.wait(10)
    finally:
        publisher.stop()
    assert announcer.asked == [["HP LaserJet 1020 @ OpenWrt"], ["Office @ OpenWrt"]]


def test_umdns_announcer_retries_after_a_failed_refresh(tmp_path: Path, caplog) -> None:
    runner = RecordingRunner(fail=True)
    announcer = umdns(tmp_path, runner)
    records = service_records([announcement(LASERJET_1020_LOADED)])
    with caplog.at_level(logging.WARNING):
        announcer.update(records)
    assert "not refreshed" in caplog.text
    runner.fail = False
    announcer.update(records)
    assert len(runner.calls) == 3  # failed publish, then publish + umdns reload


def test_umdns_announcer_close_forgets_the_services_without_calling_procd(
        tmp_path: Path) -> None:
    runner = RecordingRunner()
    announcer = umdns(tmp_path, runner)
    announcer.update(service_records([announcement(LASERJET_1020_LOADED)]))
    announcer.close()
    assert not (tmp_path / "run" / "mdns.json").exists()
    assert len(runner.calls) == 2


# --- choosing an announcer ------------------------------------------------------------------------


def test_umdns_is_chosen_under_procd() -> None:
    platform = Platform(exists=lambda path: path in ("/sbin/procd", "/usr/sbin/umdns"),
                        has_module=lambda _: True)
    assert isinstance(choose_announcer(GlobalSettings(), platform), UmdnsAnnouncer)


def test_under_procd_without_umdns_the_owner_is_told_to_install_it(caplog) -> None:
    platform = Platform(exists=lambda path: path == "/sbin/procd", has_module=lambda _: False)
    announcer = choose_announcer(GlobalSettings(), platform)
    assert isinstance(announcer, NullAnnouncer)
    with caplog.at_level(logging.WARNING):
        announcer.update(service_records([announcement(LASERJET_1020_LOADED)]))
    assert "umdns is not installed (/usr/sbin/umdns missing)" in caplog.text


def test_no_responder_gives_a_quiet_no_op_that_says_why_once(caplog) -> None:
    platform = Platform(exists=lambda _: False, has_module=lambda _: False)
    announcer = choose_announcer(GlobalSettings(), platform)
    assert isinstance(announcer, NullAnnouncer)
    records = service_records([announcement(LASERJET_1020_LOADED)])
    with caplog.at_level(logging.WARNING):
        announcer.update(records)
        announcer.update(records)
    assert caplog.text.count("not announced") == 1


def test_mdns_off_means_no_responder_even_on_openwrt() -> None:
    platform = Platform(exists=lambda _: True, has_module=lambda _: True)
    assert isinstance(choose_announcer(GlobalSettings(mdns=False), platform), NullAnnouncer)


# --- which printers are announced ---------------------------------------------------------------


@dataclass
class FakeRegistry:
    """The few registry reads the announce service makes."""

    config: Config
    present: dict[str, Attachment]
    states: dict[str, str]
    subscribers: list = field(default_factory=list)

    def attachments(self) -> dict[str, Attachment]:
        return dict(self.present)

    def printer_state(self, section: str) -> str:
        return self.states.get(section, "absent")

    def subscribe(self, callback) -> None:
        self.subscribers.append(callback)

    def changed(self) -> None:
        for callback in self.subscribers:
            callback()


def registry_with(*printers: PrinterSettings, mdns: bool = True, web_port: int = 631,
                  states: dict[str, str] | None = None) -> FakeRegistry:
    # what the USB layer reports: identity strings plus the raw device ID
    usb = {"usb_id": "03f0:2b17", "manufacturer": "Hewlett-Packard",
           "product": "HP LaserJet 1020", "device_id": LASERJET_1020_LOADED}
    return FakeRegistry(
        config=Config(settings=GlobalSettings(mdns=mdns, web_port=web_port), printers=printers),
        present={p.section: Attachment("/dev/usb/lp0", source="usb", usb=usb) for p in printers},
        states=states if states is not None else {p.section: "serving" for p in printers},
    )


def test_served_printers_are_announced_with_their_usb_identity() -> None:
    registry = registry_with(PrinterSettings("lj", name="Hall printer", port=9102))
    [printer] = announced_printers(registry, "OpenWrt")
    assert printer.name == "Hall printer"
    assert printer.port == 9102
    assert printer.device_id["MDL"] == "HP LaserJet 1020"
    assert printer.admin_url == "http://OpenWrt.local:631/"


def test_printers_not_serving_opted_out_or_bound_to_loopback_are_not_announced() -> None:
    registry = registry_with(
        PrinterSettings("serving", port=9100),
        PrinterSettings("waiting", port=9101),
        PrinterSettings("quiet", port=9102, mdns=False),
        PrinterSettings("local", port=9103, bind="127.0.0.1"),
        states={"serving": "serving", "waiting": "needs-firmware", "quiet": "serving",
                "local": "serving"},
    )
    assert [p.name for p in announced_printers(registry, "h")] == ["serving"]


def test_nothing_is_announced_when_mdns_is_off_globally() -> None:
    assert announced_printers(registry_with(PrinterSettings("a"), mdns=False), "h") == []


@dataclass
class RecordingAnnouncer:
    description = "a recording"
    updates: list[list[ServiceRecord]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def update(self, records) -> None:
        with self.changed:
            self.updates.append(list(records))
            self.changed.notify_all()

    def close(self) -> None:
        self.closed.set()

    def wait_for_updates(self, count: int) -> list[list[ServiceRecord]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.updates) >= count, timeout=5)
        return self.updates


@dataclass
class FakeCore:
    registry: FakeRegistry


def test_service_follows_registry_changes_and_skips_repeats() -> None:
    import asyncio

    registry = registry_with(PrinterSettings("lj", name="Hall", port=9100))
    announcer = RecordingAnnouncer()
    service = AnnounceService(choose=lambda settings: announcer, hostname=lambda: "OpenWrt")
    service.start(FakeCore(registry))
    first = announcer.wait_for_updates(1)[0]
    assert [r.instance for r in first] == ["Hall @ OpenWrt"]

    registry.changed()  # e.g. a job finished: nothing visible to mDNS changed
    registry.states["lj"] = "absent"
    registry.changed()
    updates = announcer.wait_for_updates(2)
    assert updates[1] == []
    assert len(updates) == 2

    asyncio.run(service.stop())
    assert announcer.closed.is_set()


def test_a_burst_of_changes_on_the_loop_is_looked_at_once_and_the_last_state_wins() -> None:
    import asyncio

    registry = registry_with(PrinterSettings("lj", name="Hall", port=9100))
    announcer = RecordingAnnouncer()
    looks: list[int] = []

    def hostname() -> str:
        looks.append(1)
        return "OpenWrt"

    service = AnnounceService(choose=lambda settings: announcer, hostname=hostname)

    async def burst() -> None:
        service.start(FakeCore(registry))
        for _ in range(200):  # jobs starting and ending
            registry.changed()
        registry.states["lj"] = "absent"
        registry.changed()
        await asyncio.sleep(0.5)
        await service.stop()

    asyncio.run(burst())
    assert len(looks) == 1
    assert announcer.updates == [[]]  # only the final state was ever announced


def test_switching_mdns_off_withdraws_through_the_old_announcer() -> None:
    import asyncio

    registry = registry_with(PrinterSettings("lj", name="Hall", port=9100))
    made: list[tuple[bool, RecordingAnnouncer]] = []

    def choose(settings: GlobalSettings) -> RecordingAnnouncer:
        made.append((settings.mdns, RecordingAnnouncer()))
        return made[-1][1]

    service = AnnounceService(choose=choose, hostname=lambda: "OpenWrt")
    service.start(FakeCore(registry))
    made[0][1].wait_for_updates(1)
    registry.config = Config(settings=GlobalSettings(mdns=False),
                             printers=registry.config.printers)
    service.reload()
    first = made[0][1]
    assert first.wait_for_updates(2)[1] == []
    assert first.closed.wait(5)
    asyncio.run(service.stop())
    assert [on for on, _ in made] == [True, False]


@pytest.mark.parametrize("device_id", [LASERJET_1020_LOADED, LASERJET_1018_NO_FIRMWARE,
                                       LASERJET_1320, OFFICEJET_K5400])
def test_records_of_real_printers_serialise_for_the_init_script(device_id: str) -> None:
    record = service_records([announcement(device_id)])[0]
    entry = json.loads(json.dumps(record.as_json()))
    assert set(entry) == {"key", "name", "type", "port", "txt"}
    assert entry["txt"][0] == "txtvers=1"
    assert all("=" in text for text in entry["txt"])


def test_an_announcer_that_cannot_start_leaves_the_daemon_running(caplog) -> None:
    import asyncio

    def broken(settings: GlobalSettings):
        raise OSError("no multicast-capable interface")

    registry = registry_with(PrinterSettings("lj", name="Hall", port=9100))
    service = AnnounceService(choose=broken, hostname=lambda: "OpenWrt")
    with caplog.at_level(logging.INFO):
        service.start(FakeCore(registry))
        registry.changed()
        asyncio.run(service.stop())
    assert "could not start" in caplog.text
    assert "announcing with nothing" in caplog.text


def test_run_command_reports_failures_as_oserror() -> None:
    from usbprintd.announce import run_command

    run_command(["true"])
    with pytest.raises(OSError, match="exit status 3"):
        run_command(["sh", "-c", "exit 3"])
    with pytest.raises(OSError, match="Not found"):
        run_command(["sh", "-c", "echo 'Command failed: Not found' >&2; exit 4"])
    with pytest.raises(OSError):
        run_command(["/nonexistent/ubus"])
