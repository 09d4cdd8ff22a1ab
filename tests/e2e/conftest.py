"""Host side of the e2e layer.

The files under guest/ are collected only inside the QEMU guest (or while the host lists
them); on the host, test_real_kernel.py reports each of them through the `guest_run` fixture,
which boots the guest once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from vmharness.guest_tests import COLLECT_ENV, GUEST_PREFIX
from vmharness.qemu import PROJECT, GuestRun, MachineSpec, run_guest_pytest

sys.path.insert(0, str(PROJECT))  # bench/: the figures file's format and labels live there
from bench.latency import (
    LATENCY_FILE,
    figure_lines,
    merge_run,
    parse_latencies,
)

GUEST_SIDE = bool(os.environ.get("USBPRINTD_E2E_GUEST") or os.environ.get(COLLECT_ENV))
collect_ignore_glob = [] if GUEST_SIDE else ["guest/*"]

GUEST_TEST_PARAM = "guest_test"  # test_real_kernel.test_guest's parameter
SUMMARY_KEY = pytest.StashKey[list[str]]()
FIGURES_FILE = "latency.json"  # written by the guest's `figures` fixture (guest/conftest.py)


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
    request.config.stash[SUMMARY_KEY] = [
        f"{len(selected) or 'all'} guest tests; guest uptime at stage 2 {stage2} s, at power-off "
        f"{end} s; QEMU wall time {run.wall_seconds:.1f} s; files in {run.results_dir}",
        *keep_figures(run),
    ]
    return run


def source_commit() -> str:
    """HEAD's short hash, '-dirty' when src/ has changes not committed (they were measured)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--", "src") else "")


def keep_figures(run: GuestRun) -> list[str]:
    """Merge the figures this run measured into LATENCY_FILE (for `make bench`), each stamped
    with when and on what it was measured; returns lines for the terminal summary."""
    try:
        measured = json.loads((run.results_dir / FIGURES_FILE).read_text())
    except (OSError, ValueError):
        return ["real-kernel figures: none measured in this run"]
    try:
        cached = json.loads(LATENCY_FILE.read_text())
    except (OSError, ValueError):
        cached = None
    stamp, commit = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), source_commit()
    LATENCY_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = LATENCY_FILE.with_suffix(".tmp")
    partial.write_text(json.dumps(merge_run(cached, measured, stamp, commit), indent=2,
                                  ensure_ascii=False) + "\n")
    partial.replace(LATENCY_FILE)
    figures = parse_latencies(measured, str(run.results_dir / FIGURES_FILE))
    if figures is None:
        return ["real-kernel figures: none measured in this run"]
    heading = (f"real-kernel figures of this run (commit {commit}, kernel "
               f"{measured.get('kernel', '?')}; median, min-max of several runs):")
    return [heading, *(f"  {line}" for line in figure_lines(figures))]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    summary = config.stash.get(SUMMARY_KEY, None)
    if summary:
        terminalreporter.write_sep("-", "real-kernel guest")
        for line in summary:
            terminalreporter.write_line(line)
