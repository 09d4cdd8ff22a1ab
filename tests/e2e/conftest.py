"""Host side of the e2e layer.

The files under guest/ are collected only inside the QEMU guest (or while the host lists
them); on the host, test_real_kernel.py reports each of them through the `guest_run` fixture,
which boots the guest once.
"""

from __future__ import annotations

import os
import shutil

import pytest
from vmharness.guest_tests import COLLECT_ENV, GUEST_PREFIX
from vmharness.qemu import CACHE_DIR, GuestRun, MachineSpec, run_guest_pytest

GUEST_SIDE = bool(os.environ.get("USBPRINTD_E2E_GUEST") or os.environ.get(COLLECT_ENV))
collect_ignore_glob = [] if GUEST_SIDE else ["guest/*"]

GUEST_TEST_PARAM = "guest_test"  # test_real_kernel.test_guest's parameter
SUMMARY_KEY = pytest.StashKey[str]()


def machine_spec() -> MachineSpec:
    return MachineSpec(memory=os.environ.get("USBPRINTD_E2E_MEMORY", "256M"),
                       timeout=float(os.environ.get("USBPRINTD_E2E_TIMEOUT", "300")),
                       kver=os.environ.get("USBPRINTD_E2E_KVER", "auto"))


def selected_guest_tests(session: pytest.Session) -> list[str]:
    """Guest tests left after -k/-m/node-id selection; all of them if none is selected."""
    return [item.callspec.params[GUEST_TEST_PARAM] for item in session.items
            if hasattr(item, "callspec") and GUEST_TEST_PARAM in item.callspec.params]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test that needs the guest waits for the whole boot: give it the time."""
    budget = machine_spec().timeout + 240
    for item in items:
        if "guest_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(budget))


@pytest.fixture(scope="session")
def guest_run(request: pytest.FixtureRequest) -> GuestRun:
    """One boot running every selected guest test; its files stay in .cache/runs/."""
    selected = selected_guest_tests(request.session)
    targets = [GUEST_PREFIX + test for test in selected] or [GUEST_PREFIX]
    run = run_guest_pytest(targets, machine_spec())
    stage2, end = run.guest_uptime("stage2"), run.guest_uptime("end")
    request.config.stash[SUMMARY_KEY] = (
        f"{len(selected) or 'all'} guest tests; guest uptime at stage 2 {stage2} s, at power-off "
        f"{end} s; QEMU wall time {run.wall_seconds:.1f} s; files in {run.results_dir}"
    )
    latency = run.results_dir / "latency.json"  # measured by guest/test_daemon_usb.py
    if latency.exists():
        shutil.copyfile(latency, CACHE_DIR / "latency.json")  # for the benchmark report
    return run


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    summary = config.stash.get(SUMMARY_KEY, None)
    if summary:
        terminalreporter.write_sep("-", "real-kernel guest")
        terminalreporter.write_line(summary)
