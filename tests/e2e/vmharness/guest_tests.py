"""Which guest tests exist, listed by pytest itself so parametrised ids come out exact."""

from __future__ import annotations

import os
import subprocess
import sys

from .qemu import E2E_DIR, PROJECT

GUEST_PREFIX = (E2E_DIR / "guest").relative_to(PROJECT).as_posix() + "/"
COLLECT_ENV = "USBPRINTD_E2E_COLLECT"


def collect_guest_tests() -> list[str]:
    """Node ids relative to tests/e2e/guest/ (`test_harness.py::test_x`)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         GUEST_PREFIX], cwd=PROJECT, capture_output=True, text=True,
        env={**os.environ, COLLECT_ENV: "1"}, check=False,
    )
    ids = [line.removeprefix(GUEST_PREFIX) for line in result.stdout.splitlines()
           if line.startswith(GUEST_PREFIX) and "::" in line]
    if result.returncode != 0 or not ids:
        raise RuntimeError(f"listing the guest tests failed:\n{result.stdout}{result.stderr}")
    return ids
