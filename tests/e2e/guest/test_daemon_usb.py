"""The daemon on a real kernel USB stack: hotplug, identity across replugs, status, unplug
mid-job and firmware bring-up, with simulated printers (configfs gadget + usb_f_printer on
dummy_hcd), real usblp nodes, real uevents, and real clients (nc, sockets).

The daemon runs as `python -m usbprintd run --config FILE`. Printer states are checked where
the owner sees them, in the JSON API the web page polls (GET /api/printers); the ports show
whether jobs are taken. Latencies (plug -> accepting, unplug -> refused, firmware printer
plug -> serving, upload start -> serving) are measured into the `figures` fixture, which the
host prints and keeps for `make bench`; they are never asserted tightly.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path

from daemon_process import free_port, port_accepts, read_until_closed, send_with_nc, wait_for
from printer_gadget import Printer, generic_printer, hp_laserjet_1018
from scenario import (
    OwnerView,
    check_routing,
    expect_log,
    payload,
    ports_by_identity,
    refuses,
    start,
    usb_printer,
)
from web_helpers import WebClient, password_hash

PLUG_SAMPLES = 3  # plug -> accepting and unplug -> refused, each about half a second
# Plug and unplug latencies are measured, not judged (the guest is emulated, its speed is the
# host's load): a step that takes longer than this has stopped working rather than slowed.
SANITY_SECONDS = 10.0


def plug_and_time(printer: Printer, port: int,
                  timeout: float = SANITY_SECONDS) -> tuple[float, float]:
    """Plug in; returns (seconds from the cable to the lp node, from the node to accepting),
    each at most `timeout`."""
    started = time.monotonic()
    printer.plug(wait=False)  # returns once the host configured the device (P4)
    wait_for(lambda: printer.lp_path, timeout, 0.01)
    node_seen = time.monotonic()
    wait_for(lambda: port_accepts(port), timeout, 0.01)
    return node_seen - started, time.monotonic() - node_seen


def unplug_and_time(printer: Printer, port: int, timeout: float = SANITY_SECONDS) -> float:
    """Pull the cable; returns the seconds (at most `timeout`) until the port refuses
    connections."""
    started = time.monotonic()
    printer.unplug(wait=False)
    wait_for(lambda: refuses(port), timeout, 0.01)
    return time.monotonic() - started


# --- plug, print, back-channel -------------------------------------------------------------


def test_plugged_printer_serves_and_jobs_round_trip(printers, usbprintd, figures):
    port = free_port()
    daemon = start(usbprintd, usb_printer("office", port, usb_id="0525:a4a8", serial="E2E0001",
                                          bidirectional="1"), drain_grace="3")
    printer = printers.new(generic_printer("E2E0001"))
    assert refuses(port)
    to_node, to_accept = plug_and_time(printer, port)
    print(f"cable -> lp node {to_node * 1000:.0f} ms, lp node -> port accepting "
          f"{to_accept * 1000:.0f} ms")
    figures.add("plug_to_accepting_ms", (to_node + to_accept) * 1000)
    daemon.wait_log(r"E2E Test Printer \(0525:a4a8, serial E2E0001\) at /dev/usb/lp\d")

    job = payload(300_001)
    assert send_with_nc(port, job) == b""
    assert printer.wait_received(len(job), timeout=20) == job

    printer.clear()
    answer = b"@PJL USTATUS DEVICE\r\nCODE=10001\r\nONLINE=TRUE\r\n\x0c"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        second = payload(70_003, seed=2)
        sock.sendall(second)
        sock.shutdown(socket.SHUT_WR)
        printer.wait_received(len(second), timeout=20)
        printer.answer(answer)  # the printer talks back after the job
        assert read_until_closed(sock, timeout=20) == answer
    assert printer.received() == second
    daemon.wait_log(rf"office: job \d+ from .* done: 70003 bytes in, {len(answer)} bytes out")

    for sample in range(PLUG_SAMPLES):  # idle unplugs, and replugs for more plug samples
        to_refused = unplug_and_time(printer, port)
        figures.add("unplug_to_refused_ms", to_refused * 1000)
        print(f"unplug -> port refused {to_refused * 1000:.0f} ms")
        if sample < PLUG_SAMPLES - 1:
            to_node, to_accept = plug_and_time(printer, port)
            figures.add("plug_to_accepting_ms", (to_node + to_accept) * 1000)
            print(f"cable -> lp node {to_node * 1000:.0f} ms, lp node -> port accepting "
                  f"{to_accept * 1000:.0f} ms")


# --- status ----------------------------------------------------------------------------------


def test_paper_out_shows_in_the_status_between_jobs_and_during_a_stalled_job(printers,
                                                                               usbprintd):
    port = free_port()
    owner = OwnerView.on_free_port()
    daemon = start(usbprintd, usb_printer("office", port, usb_id="0525:a4a8", serial="E2E0001"),
                   **owner.options)
    printer = printers.new(generic_printer("E2E0001"), plug=True)
    wait_for(lambda: port_accepts(port), 10)
    assert owner.wait_state("office", "serving")["device"] == str(printer.lp_path)

    printer.paper_out(True, hold=False)  # between jobs: the daemon opens the node briefly
    out = owner.wait_state("office", "paper-out", timeout=8)
    assert out["present"] and out["active_job"] is None
    printer.paper_out(False)
    owner.wait_state("office", "serving", timeout=8)

    # During a job: the printer stops taking data, then reports paper out; the status is read
    # through the job's own fd once it has stalled, and the job completes when paper is back.
    printer.hold(True)
    job = payload(1_048_577, seed=3)
    mark = len(daemon.log())
    sender = threading.Thread(target=send_with_nc, args=(port, job), kwargs={"timeout": 60})
    sender.start()
    expect_log(daemon, mark, r"office: job \d+ from \S+ started")
    time.sleep(2)
    printer.set_status(0x30)
    stalled = owner.wait_state("office", "paper-out", timeout=8)
    assert stalled["active_job"] is not None and stalled["active_job"]["stalled"], stalled
    printer.paper_out(False)  # status and data flow back
    sender.join(60)
    assert not sender.is_alive()
    assert printer.wait_received(len(job), timeout=30) == job
    owner.wait_state("office", "serving", timeout=8)


# --- unplug mid-job, replug ----------------------------------------------------------------


def test_unplug_mid_job_fails_the_job_closes_the_client_and_replug_serves_again(
        printers, usbprintd, figures):
    port = free_port()
    daemon = start(usbprintd, usb_printer("office", port, usb_id="0525:a4a8", serial="E2E0001"))
    printer = printers.new(generic_printer("E2E0001"), plug=True)
    wait_for(lambda: port_accepts(port), 10)
    printer.hold(True)  # a long job: the printer takes its time

    mark = len(daemon.log())
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sender = threading.Thread(target=_send_ignoring_reset, args=(sock, payload(4_000_001)))
    sender.start()
    expect_log(daemon, mark, r"office: job \d+ from \S+ started")
    time.sleep(1)
    to_refused = unplug_and_time(printer, port)
    figures.add("unplug_mid_job_to_refused_ms", to_refused * 1000)
    print(f"unplug during a job -> port refused {to_refused * 1000:.0f} ms")
    assert read_until_closed(sock, timeout=10) == b""  # closed (reset): the client knows
    sender.join(10)
    sock.close()
    expect_log(daemon, mark, r"office: job \d+ from \S+ failed: \d+ bytes in")
    assert daemon.alive

    printer.hold(False)
    printer.plug()
    wait_for(lambda: port_accepts(port), 10)
    job = payload(20_001, seed=4)
    printer.clear()
    send_with_nc(port, job)
    assert printer.wait_received(len(job), timeout=20) == job


def _send_ignoring_reset(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the daemon resets the connection at the unplug
        sock.sendall(data)


# --- identity ------------------------------------------------------------------------------


def test_two_identical_models_keep_their_ports_across_replug_in_the_other_order(printers,
                                                                               usbprintd):
    port_a, port_b = free_port(), free_port()
    start(usbprintd,
          usb_printer("alpha", port_a, usb_id="0525:a4a8", serial="SER-A"),
          usb_printer("beta", port_b, usb_id="0525:a4a8", serial="SER-B"))
    alpha = printers.new(generic_printer("SER-A"))
    beta = printers.new(generic_printer("SER-B"))
    routes = [(alpha, port_a), (beta, port_b)]

    alpha.plug()
    beta.plug()
    first = (alpha.lp_path, alpha.usb_device.name, beta.lp_path, beta.usb_device.name)
    check_routing(routes)
    alpha.unplug()
    beta.unplug()
    wait_for(lambda: refuses(port_a) and refuses(port_b), 10)
    beta.plug()  # now beta takes the first port and lp node
    alpha.plug()
    second = (alpha.lp_path, alpha.usb_device.name, beta.lp_path, beta.usb_device.name)
    print(f"first plug: {first}; second plug: {second}")
    assert first[0] == second[2] and first[2] == second[0]  # lp nodes swapped
    check_routing(routes)


def test_printers_without_serial_are_added_once_and_keep_their_ports_by_usb_path(printers,
                                                                                  usbprintd):
    base = free_port()
    daemon = start(usbprintd, autoadd="1", base_port=str(base))
    one = printers.new(generic_printer(None))
    two = printers.new(generic_printer(None))
    one.plug()
    two.plug()
    udcs = {one.name: one.udc, two.name: two.udc}
    wait_for(lambda: daemon.config_path.read_text().count("config printer") == 2, 10)
    config = daemon.config_path.read_text()
    ports = ports_by_identity(config)
    assert sorted(ports.values()) == [base, base + 1], config
    assert not re.search(r"option serial '.+'", config)
    paths = {one.name: one.usb_device.name, two.name: two.usb_device.name}

    one.unplug()
    two.unplug()
    two.plug(udcs[two.name])  # other order, same sockets
    one.plug(udcs[one.name])
    check_routing([(one, ports[paths[one.name]]), (two, ports[paths[two.name]])])
    assert daemon.config_path.read_text() == config  # no further writes: flash is precious


# --- firmware ------------------------------------------------------------------------------


def firmware_printer(tmp_path: Path, seed: int, with_blob: bool = True) -> tuple[Path, bytes]:
    """A firmware directory for the HP LaserJet 1018 model, with its blob unless told not."""
    firmware_dir = tmp_path / "firmware"
    firmware_dir.mkdir()
    blob = payload(hp_laserjet_1018().firmware.size, seed=seed)
    if with_blob:
        (firmware_dir / "sihp1018.dl").write_bytes(blob)
    return firmware_dir, blob


def laser(port: int) -> str:
    return usb_printer("laser", port, usb_id="03f0:4117", serial="FAKE1018SN0001")


def uploading(entry: dict) -> bool:
    return entry["state"] == "uploading-firmware" and "sihp1018.dl" in entry["detail"]


def test_firmware_printer_gets_its_blob_then_serves_and_again_after_a_power_cycle(
        printers, usbprintd, tmp_path, figures):
    firmware_dir, blob = firmware_printer(tmp_path, seed=9)
    port = free_port()
    daemon = start(usbprintd, laser(port), firmware_dir=str(firmware_dir))
    printer = printers.new(hp_laserjet_1018())
    for power_on in (1, 2):  # the second time after a power cycle: the printer forgot its blob
        plugged = time.monotonic()
        printer.plug()
        wait_for(lambda: port_accepts(port), 40, 0.02)
        serving = time.monotonic()
        upload_started = printer.first_data_at  # the blob's first byte reached the printer
        assert upload_started is not None and plugged < upload_started < serving
        figures.add("firmware_plug_to_serving_ms", (serving - plugged) * 1000)
        figures.add("firmware_upload_to_serving_ms", (serving - upload_started) * 1000)
        print(f"power-on {power_on}: plug of a firmware printer -> serving "
              f"{(serving - plugged) * 1000:.0f} ms, of it upload start -> serving "
              f"{(serving - upload_started) * 1000:.0f} ms")
        daemon.wait_log(r"Laser: firmware sihp1018\.dl loaded \(FWVER 20041006\)",
                        count=power_on)
        assert printer.firmware_loaded
        assert printer.received()[:len(blob)] == blob

        job = payload(50_001, seed=10 + power_on)
        send_with_nc(port, job)
        assert printer.wait_received(len(job), timeout=20, after_firmware=True) == job
        printer.unplug()
        wait_for(lambda: refuses(port), 10)
        printer.clear()
        printer.forget_firmware()


def test_unplug_mid_firmware_upload_keeps_the_daemon_up_and_replug_uploads_again(
        printers, usbprintd, tmp_path):
    firmware_dir, blob = firmware_printer(tmp_path, seed=12)
    port = free_port()
    owner = OwnerView.on_free_port()
    daemon = start(usbprintd, laser(port), firmware_dir=str(firmware_dir), **owner.options)
    # The gadget queues the blob's first 160 KiB (q_len 20 x 8 KiB), then the printer takes no
    # more: the upload stays part-way, which the owner sees as its progress.
    printer = printers.new(hp_laserjet_1018(), q_len=20)
    printer.hold(True)
    printer.plug()
    stuck = owner.wait_until("laser", lambda entry: uploading(entry)
                             and 0 < (entry["progress"] or 0) < 1, timeout=30)
    print(f"the owner sees: {stuck['state']}, {stuck['detail']!r}, progress {stuck['progress']}")
    assert "sent sihp1018.dl" not in daemon.log()
    assert not printer.firmware_loaded and refuses(port)
    mark = len(daemon.log())
    printer.unplug(wait=False)
    expect_log(daemon, mark, r"USB printer .* removed", timeout=10)
    assert owner.wait_state("laser", "absent")["progress"] is None
    time.sleep(1)
    assert daemon.alive and refuses(port)
    after_unplug = daemon.log()[mark:]
    assert "Traceback" not in after_unplug and "did not take" not in after_unplug

    printer.clear()  # the power went with the cable: the partial blob is gone
    printer.hold(False)
    printer.plug()
    wait_for(lambda: port_accepts(port), 40, 0.05)
    assert printer.firmware_loaded
    assert printer.received()[:len(blob)] == blob  # the whole blob again, from its start
    job = payload(30_001, seed=13)
    send_with_nc(port, job)
    assert printer.wait_received(len(job), timeout=20, after_firmware=True) == job
    owner.wait_state("laser", "serving")


def test_missing_firmware_keeps_the_port_closed_until_the_blob_arrives_and_sighup(
        printers, usbprintd, tmp_path):
    firmware_dir, blob = firmware_printer(tmp_path, seed=11, with_blob=False)
    port = free_port()
    owner = OwnerView.on_free_port()
    daemon = start(usbprintd, laser(port), firmware_dir=str(firmware_dir), **owner.options)
    printer = printers.new(hp_laserjet_1018(), plug=True)
    waiting = owner.wait_state("laser", "needs-firmware", timeout=10)
    assert "sihp1018.dl" in waiting["detail"] and str(firmware_dir) in waiting["detail"]
    assert waiting["present"] and waiting["listening"] == []
    time.sleep(1)
    assert refuses(port) and not printer.firmware_loaded
    assert owner.printer("laser")["state"] == "needs-firmware"

    (firmware_dir / "sihp1018.dl").write_bytes(blob)
    daemon.reload()  # SIGHUP: no replug needed
    wait_for(lambda: port_accepts(port), 40, 0.05)
    assert printer.firmware_loaded
    assert owner.wait_state("laser", "serving")["detail"] == ""
    daemon.wait_log(r"Laser: firmware sihp1018\.dl loaded")


def test_firmware_uploaded_on_the_web_page_brings_a_waiting_printer_up(printers, usbprintd,
                                                                        tmp_path):
    """The owner's way: the page's upload (PUT /api/firmware/NAME) starts the bring-up of a
    printer that waits for its blob, with no replug and no SIGHUP; the page shows it waiting,
    uploading (the printer holds the blob part-way until the page has shown it) and serving."""
    firmware_dir, blob = firmware_printer(tmp_path, seed=12, with_blob=False)
    port, web_port = free_port(), free_port()
    daemon = start(usbprintd, laser(port), firmware_dir=str(firmware_dir),
                   web_listen="127.0.0.1", web_port=str(web_port), auth="password",
                   password_hash=password_hash())
    # q_len 20: the gadget queues the blob's first 160 KiB, then the held printer takes no more
    printer = printers.new(hp_laserjet_1018(), q_len=20, plug=True)
    web = WebClient(web_port)
    assert web.login().status == 200
    owner = OwnerView(web)
    assert "sihp1018.dl" in owner.wait_state("laser", "needs-firmware", timeout=10)["detail"]
    assert refuses(port)

    printer.hold(True)
    reply = web.request("PUT", "/api/firmware/sihp1018.dl", raw=blob,
                        headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 201, reply.body
    stuck = owner.wait_until("laser", lambda entry: uploading(entry)
                             and 0 < (entry["progress"] or 0) < 1, timeout=30)
    print(f"the page shows: {stuck['state']}, {stuck['detail']!r}, progress {stuck['progress']}")
    assert not printer.firmware_loaded and refuses(port)
    printer.hold(False)

    serving = owner.wait_state("laser", "serving", timeout=40)
    assert serving["detail"] == "" and serving["progress"] is None
    assert printer.firmware_loaded and port_accepts(port)
    assert printer.received()[:len(blob)] == blob
    daemon.wait_log(r"Laser: firmware sihp1018\.dl loaded")


# --- printers the kernel gives no lp device ---------------------------------------------------


def test_printer_without_usblp_is_reported_with_its_reason_and_served_when_bound(
        printers, usbprintd):
    port = free_port()
    daemon = start(usbprintd, usb_printer("office", port, usb_id="0525:a4a8", serial="E2E0001"))
    printer = printers.new(generic_printer("E2E0001"), plug=True)
    wait_for(lambda: port_accepts(port), 10)
    interface = f"{printer.usb_device.name}:1.0"
    usblp = Path("/sys/bus/usb/drivers/usblp")
    (usblp / "unbind").write_text(interface)
    wait_for(lambda: refuses(port), 10)
    # libusb reads the 1284 ID (the name) of a printer usblp does not hold
    line = daemon.wait_log(r"USB printer .* is not served: usblp did not take it", timeout=10)
    assert "E2E Test Printer (0525:a4a8, E2E0001)" in line
    daemon.wait_log(r"0525:a4a8: device ID read through libusb: 'MFG:Linux;MDL:E2E Test Printer;")
    (usblp / "bind").write_text(interface)
    wait_for(lambda: port_accepts(port), 10)
