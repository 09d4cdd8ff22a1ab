"""Fixtures shared by the integration tests that run the real daemon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daemon_process import DaemonProcess


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """The daemons a test started (see `daemon_process.launch`); each is stopped at the end."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.stop()
