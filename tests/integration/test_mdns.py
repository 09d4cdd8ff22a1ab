"""mDNS announcements seen by an independent implementation: avahi.

Two network namespaces joined by a veth pair stand in for the router and a client on its LAN.
The announcer (python-zeroconf, alone or inside the real daemon) runs in one; avahi-daemon (with
a private D-Bus) and avahi-browse run in the other and resolve what was announced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_process import wait_for

from usbprintd.announce import PrinterAnnouncement, service_records

REPO = Path(__file__).resolve().parents[2]
ROUTER_ADDRESS = "10.203.0.1"
CLIENT_ADDRESS = "10.203.0.2"
TOOLS = ("ip", "dbus-daemon", "avahi-daemon", "avahi-browse", "nc")

LASERJET_1020 = {"MFG": "Hewlett-Packard", "MDL": "HP LaserJet 1020", "CMD": "ACL",
                 "CLS": "PRINTER", "DES": "HP LaserJet 1020", "FWVER": "20041129"}
LASERJET_1320 = {"MFG": "Hewlett-Packard", "CMD": "PJL,MLC,BIDI-ECP,PCL,POSTSCRIPT,PCLXL",
                 "MDL": "hp LaserJet 1320 series", "CLS": "PRINTER",
                 "DES": "Hewlett-Packard LaserJet 1320 series"}

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
host-name=usbprintd-test-client
use-ipv4=yes
use-ipv6=no
allow-interfaces=veth-client
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""

# Runs in the router namespace: one JSON command per line on stdin, "ok" per command on stdout.
ANNOUNCER_DRIVER = """
import json, sys
from usbprintd.announce import PrinterAnnouncement, ZeroconfAnnouncer, service_records
announcer = ZeroconfAnnouncer(interfaces=[sys.argv[1]])
for line in sys.stdin:
    command = json.loads(line)
    if command == "close":
        announcer.close()
        print("ok", flush=True)
        break
    announcer.update(service_records(PrinterAnnouncement(**p) for p in command))
    print("ok", flush=True)
"""


@dataclass
class Lab:
    router: str  # network namespace names
    client: str
    workdir: Path
    bus: str  # DBUS_SYSTEM_BUS_ADDRESS of the private bus avahi uses

    def in_router(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.router, *argv]

    def in_client(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]


@dataclass(frozen=True)
class Resolved:
    name: str
    host: str
    address: str
    port: int
    txt_pairs: tuple[tuple[str, str], ...]

    @property
    def txt(self) -> dict[str, str]:
        return dict(self.txt_pairs)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (make test-deps installs them)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    suffix = f"{os.getpid()}"
    router, client = f"usbprintd-router-{suffix}", f"usbprintd-client-{suffix}"
    workdir = tmp_path_factory.mktemp("mdns")
    processes: list[subprocess.Popen] = []
    try:
        _run("ip", "netns", "add", router)
        _run("ip", "netns", "add", client)
        _run("ip", "-n", router, "link", "add", "veth-router", "type", "veth", "peer", "name",
             "veth-client", "netns", client)
        for namespace, device, address in ((router, "veth-router", ROUTER_ADDRESS),
                                           (client, "veth-client", CLIENT_ADDRESS)):
            _run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            _run("ip", "-n", namespace, "link", "set", device, "up")
            _run("ip", "-n", namespace, "link", "set", "lo", "up")

        bus_socket = workdir / "bus"
        (workdir / "bus.conf").write_text(BUS_CONFIG.format(socket=bus_socket))
        processes.append(subprocess.Popen(
            ["dbus-daemon", f"--config-file={workdir / 'bus.conf'}", "--nofork", "--nopidfile"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "dbus.log").open("wb")))
        wait_for(bus_socket.exists, timeout=10)

        (workdir / "avahi.conf").write_text(AVAHI_CONFIG)
        avahi_log = workdir / "avahi.log"
        bus = f"unix:path={bus_socket}"
        # `ip netns exec` gives the command a mount namespace of its own: a private /run keeps
        # avahi's pid file and socket away from any avahi the machine runs.
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", client, "sh", "-c",
             "mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && exec avahi-daemon "
             f"-f {workdir / 'avahi.conf'} --no-drop-root --no-chroot --no-rlimits"],
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus},
            stdout=avahi_log.open("wb"), stderr=subprocess.STDOUT))
        wait_for(lambda: "Server startup complete" in avahi_log.read_text(), timeout=20)
        yield Lab(router, client, workdir, bus)
    finally:
        for process in reversed(processes):
            _stop(process)
        for namespace in (router, client):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


_ESCAPE = re.compile(r"\\(\d{3})")


def _unescape(text: str) -> str:
    """avahi-browse -p writes bytes outside [A-Za-z0-9-] of names as \\DDD (decimal)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1))), text)


def browse(lab: Lab) -> list[Resolved]:
    """What a client on the LAN resolves right now (avahi-browse -rpt: resolve, parsable,
    terminate once the cache has been listed)."""
    result = subprocess.run(
        lab.in_client("avahi-browse", "--resolve", "--parsable", "--terminate",
                      "--no-db-lookup", "_pdl-datastream._tcp"),
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": lab.bus},
        capture_output=True, text=True, timeout=30)
    resolved: set[Resolved] = set()
    for line in result.stdout.splitlines():
        if not line.startswith("="):
            continue
        fields = line.split(";", 9)
        txt_strings = re.findall(r'"((?:[^"\\]|\\.)*)"', fields[9])
        pairs = tuple(sorted(tuple(text.split("=", 1)) for text in txt_strings))
        resolved.add(Resolved(_unescape(fields[3]), fields[6], fields[7], int(fields[8]), pairs))
    return sorted(resolved, key=lambda r: r.name)  # one entry per interface and protocol


def browse_until(lab: Lab, expected_names: set[str], timeout: float = 30) -> list[Resolved]:
    """Browse until exactly `expected_names` are resolved (announcements and goodbyes take a
    moment to travel); returns the resolved services."""
    latest: list[Resolved] = []

    def settled() -> bool:
        nonlocal latest
        latest = browse(lab)
        return {entry.name for entry in latest} == expected_names

    try:
        wait_for(settled, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"wanted {expected_names}, resolved {latest}") from None
    return latest


class Announcer:
    """ZeroconfAnnouncer in the router namespace, driven over stdin."""

    def __init__(self, lab: Lab) -> None:
        script = lab.workdir / "announcer.py"
        script.write_text(ANNOUNCER_DRIVER)
        self.process = subprocess.Popen(
            lab.in_router(sys.executable, str(script), ROUTER_ADDRESS),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")})

    def send(self, command) -> None:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline().strip()
        assert reply == "ok", self.process.stderr.read() if self.process.stderr else reply

    def update(self, *printers: PrinterAnnouncement) -> None:
        self.send([{"name": p.name, "port": p.port, "hostname": p.hostname,
                    "device_id": dict(p.device_id), "admin_url": p.admin_url}
                   for p in printers])

    def close(self) -> None:
        self.send("close")
        self.process.wait(timeout=20)


def test_announced_printers_are_resolved_with_port_and_txt_then_updated_and_withdrawn(
        lab: Lab) -> None:
    laserjet = PrinterAnnouncement("HP LaserJet 1020", 9100, "router", LASERJET_1020,
                                   admin_url="http://router.local:631/")
    office = PrinterAnnouncement("Office", 9101, "router", LASERJET_1320)
    announcer = Announcer(lab)
    try:
        announcer.update(laserjet, office)
        found = browse_until(lab, {"HP LaserJet 1020 @ router", "Office @ router"})
        records = {r.instance: r for r in service_records([laserjet, office])}
        for service in found:
            assert service.address == ROUTER_ADDRESS
            assert service.port == records[service.name].port
            assert service.txt == dict(records[service.name].txt)
        assert found[0].txt["usb_MDL"] == "HP LaserJet 1020"
        assert found[0].txt["adminurl"] == "http://router.local:631/"
        assert found[1].txt["pdl"] == "application/vnd.hp-PCL,application/postscript"

        renamed = PrinterAnnouncement("Hall", 9102, "router", LASERJET_1320)
        announcer.update(renamed)  # the set changes: one goes, one is renamed and moved
        [hall] = browse_until(lab, {"Hall @ router"})
        assert hall.port == 9102
        assert hall.txt["note"] == "Hall"

        announcer.close()
        browse_until(lab, set())
    finally:
        _stop(announcer.process)


def test_daemon_announces_what_it_serves_and_a_client_prints_to_the_resolved_port(
        lab: Lab, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    port = 9100
    config = tmp_path / "usbprintd.conf"

    def write_config(name: str) -> None:
        config.write_text(
            "config usbprintd 'main'\n\toption autoadd '0'\n\toption web_port '0'\n"
            "\toption mdns '1'\n\toption drain_grace '0.5'\n\n"
            f"config printer 'spool'\n\toption enabled '1'\n\toption name '{name}'\n"
            f"\toption device '{spool}'\n\toption port '{port}'\n\toption mdns '1'\n")

    write_config("Spool printer")
    log_path = tmp_path / "daemon.log"
    host = socket.gethostname()
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            lab.in_router(sys.executable, "-m", "usbprintd", "run", "--config", str(config),
                          "--log-level", "debug"),
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"})
    try:
        [printer] = browse_until(lab, {f"Spool printer @ {host}"})
        assert (printer.address, printer.port) == (ROUTER_ADDRESS, port)
        assert printer.txt["note"] == "Spool printer"
        assert printer.txt["pdl"] == "application/octet-stream"

        # a client on the LAN prints to the address and port it resolved
        job = b"%!PS\n" + os.urandom(4096) + b"\n%%EOF\n"
        subprocess.run(lab.in_client("nc", "-N", printer.address, str(printer.port)), input=job,
                       check=True, timeout=30, capture_output=True)
        wait_for(lambda: [p for p in spool.iterdir() if p.read_bytes() == job], timeout=10)

        write_config("Front desk")
        daemon.send_signal(signal.SIGHUP)
        browse_until(lab, {f"Front desk @ {host}"})
    finally:
        _stop(daemon)
    assert daemon.returncode == 0, log_path.read_text()
    browse_until(lab, set())  # goodbye packets on the way out
    assert "Traceback" not in log_path.read_text()
