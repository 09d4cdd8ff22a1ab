"""Fixtures for tests that run inside the QEMU guest (see tests/e2e/README.md).

Also reports every test phase as one JSON line in $USBPRINTD_E2E_RESULTS/results.jsonl,
which the host-side runner (tests/e2e/test_real_kernel.py) turns into host test results.
Lines are appended as tests finish, so a guest that hangs or crashes still leaves the
results of everything before.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from printer_gadget import Printer, PrinterModel, UsbStack, generic_printer

PROJECT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(PROJECT / "tests" / "integration"))

from daemon_process import DaemonProcess  # noqa: E402  (the integration tests' launcher)

RESULTS_ENV = "USBPRINTD_E2E_RESULTS"
FIGURES_FILE = "latency.json"  # the host merges it into tests/e2e/.cache/ for `make bench`


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    results = os.environ.get(RESULTS_ENV)
    if not results:
        return
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # skips: (file, line, reason)
        longrepr = longrepr[2]
    record = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": report.duration,
        "longrepr": str(longrepr) if longrepr else "",
        "sections": [list(section) for section in report.sections],
        "wasxfail": getattr(report, "wasxfail", None),
    }
    with open(Path(results) / "results.jsonl", "a") as stream:
        stream.write(json.dumps(record) + "\n")


class Figures:
    """Figures measured on the real kernel (latencies, memory), as samples per key; the key's
    suffix is the unit (`_ms`, `_mib`). Saved to the results share after every sample, so a
    guest that dies later still leaves them; never asserted tightly."""

    def __init__(self, path: Path | None):
        self.path = path
        self.samples: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(round(value, 2))
        if self.path is not None:
            data = {"kernel": os.uname().release, "figures": self.samples}
            self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def figures() -> Figures:
    results = os.environ.get(RESULTS_ENV)
    return Figures(Path(results) / FIGURES_FILE if results else None)


@pytest.fixture(scope="session")
def usb_stack() -> UsbStack:
    """Modules loaded (dummy_hcd num=4 → dummy_udc.0..3, each with its own host bus)."""
    if os.geteuid() != 0 or not os.environ.get("USBPRINTD_E2E_GUEST"):
        pytest.fail("guest tests run inside the QEMU guest only: pytest tests/e2e")
    return UsbStack()


class Printers:
    """Factory for simulated printers; everything it made is unplugged and removed after
    the test, device side first (P3)."""

    def __init__(self, stack: UsbStack):
        self.stack = stack
        self.made: list[Printer] = []
        self._names = (f"e2e{number}" for number in itertools.count())

    def new(self, model: PrinterModel | None = None, *, q_len: int = 10,
            plug: bool = False) -> Printer:
        """A printer of `model` (default: generic_printer()); `plug=True` plugs it in and
        waits for its lp node."""
        model = model or generic_printer()
        printer = Printer(self.stack, next(self._names), model, q_len)
        self.made.append(printer)
        if plug:
            printer.plug()
        return printer

    def remove_all(self) -> list[BaseException]:
        errors: list[BaseException] = []
        for printer in reversed(self.made):
            try:
                printer.check()
            except RuntimeError as error:
                errors.append(error)
            printer.remove()
        self.made.clear()
        return errors


@pytest.fixture
def printers(usb_stack: UsbStack) -> Iterator[Printers]:
    factory = Printers(usb_stack)
    yield factory
    errors = factory.remove_all()
    if errors:
        pytest.fail(f"device-side failures: {errors}")


@pytest.fixture
def printer(printers: Printers) -> Printer:
    """A generic printer, plugged in, with its lp node present."""
    return printers.new(plug=True)


@pytest.fixture
def usbprintd(tmp_path: Path) -> Iterator[Callable[[str], DaemonProcess]]:
    """Starts `python -m usbprintd run --config <file>` with the given UCI text; stops it
    afterwards and prints its log (shown with the test's output)."""
    started: list[DaemonProcess] = []

    def start(config_text: str) -> DaemonProcess:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = DaemonProcess(workdir, config_text)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()
        print(f"--- {daemon.log_path} ---\n{daemon.log()}")
