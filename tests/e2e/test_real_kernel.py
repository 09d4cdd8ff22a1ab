"""End-to-end tests on a real kernel USB stack: one QEMU/TCG boot of Debian's kernel runs
every selected test of tests/e2e/guest/ with pytest; each guest test is reported here as
`test_guest[<file>::<test>]` with its guest output.  See README.md."""

from __future__ import annotations

import pytest
from vmharness.guest_tests import GUEST_PREFIX, collect_guest_tests
from vmharness.qemu import GuestRun

pytestmark = pytest.mark.e2e


def _reports_for(run: GuestRun, guest_test: str) -> list[dict]:
    return [report for report in run.reports() if report["nodeid"] == GUEST_PREFIX + guest_test]


@pytest.mark.parametrize("guest_test", collect_guest_tests())
def test_guest(guest_run: GuestRun, guest_test: str) -> None:
    reports = _reports_for(guest_run, guest_test)
    if not reports:
        pytest.fail("the guest reported nothing for this test\n" + guest_run.describe_failure(),
                    pytrace=False)
    shown: set[tuple[str, str]] = set()
    for report in reports:  # teardown reports repeat the call's captured output
        for title, content in report["sections"]:
            if (title, content) not in shown:
                shown.add((title, content))
                print(f"--- guest: {title} ---\n{content}")
    failures = [f"[guest {report['when']}, {report['duration']:.2f} s]\n{report['longrepr']}"
                for report in reports if report["outcome"] == "failed"]
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    for report in reports:
        if report["outcome"] == "skipped":
            if report["wasxfail"] is not None:
                pytest.xfail(report["wasxfail"] or report["longrepr"])
            pytest.skip(f"in the guest: {report['longrepr']}")
    if not any(report["when"] == "call" for report in reports):
        pytest.fail("the guest never ran this test's body\n" + guest_run.describe_failure(),
                    pytrace=False)


def test_guest_run_completed(guest_run: GuestRun) -> None:
    """pytest in the guest finished on its own (exit 0, or 1 for failures reported above)."""
    assert not guest_run.timed_out, guest_run.describe_failure()
    assert guest_run.pytest_returncode in (0, 1), guest_run.describe_failure()


def test_guest_kernel_log_is_clean(guest_run: GuestRun) -> None:
    """No BUG/Oops/WARNING/soft lockup: e.g. unbinding with /dev/g_printer0 open (P3)."""
    alarms = guest_run.kernel_alarms()
    assert alarms == [], "\n".join(alarms) + "\n" + (guest_run.dmesg or guest_run.console)
    assert "Linux version" in guest_run.dmesg, "no kernel log came back from the guest"
