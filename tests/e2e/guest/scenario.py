"""Building blocks of the daemon scenarios in the guest: payloads the gadget delivers, printer
sections, starting the daemon the way OpenWrt runs it, and what the owner sees of it through
the daemon's JSON API (the web page polls GET /api/printers)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from daemon_process import (
    DaemonProcess,
    free_port,
    global_section,
    port_accepts,
    send_with_nc,
    wait_for,
)
from printer_gadget import Printer, tail_may_stall
from web_helpers import WebClient


def payload(size: int, seed: int = 1) -> bytes:
    assert not tail_may_stall(size), "pick a size whose tail the gadget delivers (P2)"
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def usb_printer(section: str, port: int, **options: str) -> str:
    """A printer section found by USB identity (no pinned device)."""
    options = {"enabled": "1", "name": section.capitalize(), "port": str(port),
               "bind": "127.0.0.1", **options}
    return f"config printer '{section}'\n" + "".join(
        f"\toption {key} '{value}'\n" for key, value in options.items()) + "\n"


def start(usbprintd: Callable[[str], DaemonProcess], *printers: str,
          **global_options: str) -> DaemonProcess:
    """The daemon with these printer sections, once its USB layer is watching (and its web
    page answers, when the options turn it on)."""
    daemon = watching(usbprintd(global_section(**global_options) + "".join(printers)))
    web_port = int(global_options.get("web_port", "0"))
    if web_port:
        wait_for(lambda: port_accepts(web_port), 15)
    return daemon


def watching(daemon: DaemonProcess) -> DaemonProcess:
    # No udevd in the guest: the daemon must listen to the kernel's own uevents (OpenWrt case).
    daemon.wait_log(r"watching USB printers \(kernel events\)", timeout=15)
    return daemon


def expect_log(daemon: DaemonProcess, after: int, pattern: str, timeout: float = 10.0) -> str:
    """The first log line matching `pattern` written after offset `after` (a len(log()))."""
    regex = re.compile(pattern)

    def found() -> str | None:
        lines = daemon.log()[after:].splitlines()
        return next((line for line in lines if regex.search(line)), None)

    return wait_for(found, timeout)


def refuses(port: int) -> bool:
    return not port_accepts(port)


def ports_by_identity(config: str) -> dict[str, int]:
    """The printer sections of a UCI text: serial (usb_path when it has none) -> port."""
    ports = {}
    for block in config.split("config printer")[1:]:
        identity = (re.search(r"option serial '([^']+)'", block)
                    or re.search(r"option usb_path '([^']+)'", block))
        assert identity is not None, f"a printer section without identity: {block}"
        ports[identity.group(1)] = int(re.search(r"option port '(\d+)'", block).group(1))
    return ports


def check_routing(routes: list[tuple[Printer, int]]) -> None:
    """A job sent to each port arrives, byte for byte, at that port's printer and nowhere
    else (every job has its own size and content)."""
    for printer, port in routes:
        printer.clear()
        wait_for(lambda p=port: port_accepts(p), 10)
    jobs = [payload(5_001 + 2_000 * number, seed=100 + number) for number in range(len(routes))]
    with ThreadPoolExecutor(len(routes)) as senders:  # printers print side by side
        list(senders.map(send_with_nc, [port for _, port in routes], jobs))
    for (printer, port), job in zip(routes, jobs, strict=True):
        received = printer.wait_received(len(job), timeout=20)
        assert received == job, f"port {port}: {printer.name} got {len(received)} other bytes"


@dataclass
class OwnerView:
    """The daemon's JSON API on a loopback port with auth 'none' (allowed on loopback only):
    printer states as the owner's page shows them."""

    client: WebClient
    seen: list[tuple[str, str, Any]] = field(default_factory=list)  # (state, detail, progress)

    @classmethod
    def on_free_port(cls) -> OwnerView:
        return cls(WebClient(free_port()))

    @property
    def options(self) -> dict[str, str]:
        """Global options that turn the page on where this view looks."""
        return {"web_listen": "127.0.0.1", "web_port": str(self.client.port), "auth": "none"}

    def printers(self) -> dict[str, dict[str, Any]]:
        reply = self.client.request("GET", "/api/printers")
        assert reply.status == 200, (reply.status, reply.body)
        return {entry["section"]: entry for entry in reply.json["printers"]}

    def printer(self, section: str) -> dict[str, Any]:
        entry = self.printers()[section]
        self.seen.append((entry["state"], entry["detail"], entry["progress"]))
        return entry

    def wait_until(self, section: str, accept: Callable[[dict[str, Any]], bool],
                   timeout: float = 10.0, interval: float = 0.05) -> dict[str, Any]:
        """The first entry of `section` that `accept` takes; the failure names the states seen."""
        deadline = time.monotonic() + timeout
        first = len(self.seen)
        while True:
            entry = self.printer(section)
            if accept(entry):
                return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"{section}: no matching state within {timeout} s; seen "
                                     f"{sorted(set(self.seen[first:]), key=str)}")
            time.sleep(interval)

    def wait_state(self, section: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_until(section, lambda entry: entry["state"] == state, timeout)

