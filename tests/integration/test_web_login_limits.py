"""Concurrent logins against the running daemon: the per-address limit holds for attempts
that run at the same time, and only a few password checks (PBKDF2, seconds of CPU on a
router) run at once, whoever asks (shown with checks held running in an rpcd stand-in)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from web_helpers import FakeAccount, FakeRpcd, Reply, start_web_daemon

from usbprintd.web.auth import (
    BUSY_RETRY_SECONDS,
    LOGIN_FAILURES_ALLOWED,
    MAX_CONCURRENT_LOGINS,
    LoginsBusy,
)

ROOT_PASSWORD = "router-root-pw"


@pytest.fixture
def web(tmp_path: Path):
    running = start_web_daemon(tmp_path)
    yield running
    running.daemon.stop()


def at_once(web, sources: list[str], password: str = "wrong password") -> list[Reply]:
    """One login per source address, all let go at the same moment."""
    start = threading.Barrier(len(sources))
    replies: list[Reply | None] = [None] * len(sources)

    def attempt(index: int, source: str) -> None:
        client = web.client(source=source)
        start.wait()
        replies[index] = client.login(password)

    threads = [threading.Thread(target=attempt, args=(i, s)) for i, s in enumerate(sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(reply is not None for reply in replies)
    return replies  # type: ignore[return-value]


def test_attempts_running_at_once_cannot_pass_the_per_address_limit(web):
    source = "127.0.0.5"
    for _ in range(LOGIN_FAILURES_ALLOWED - 1):
        assert web.client(source=source).login("wrong password").status == 401
    # one attempt is left: of two running at the same time, only one may check the password
    replies = at_once(web, [source, source])
    assert sorted(reply.status for reply in replies) == [401, 429]
    throttled = next(reply for reply in replies if reply.status == 429)
    assert "too many failed logins" in throttled.json["error"]
    assert int(throttled.header("Retry-After")) > 0
    assert web.client(source=source).login().status == 429  # the right password too, now
    assert web.client(source="127.0.0.6").login().status == 200


class HeldRpcd(FakeRpcd):
    """The rpcd stand-in, able to hold password checks until the test lets them go: while
    held, the daemon's checks stay running for as long as the test needs them to."""

    HOLD_LIMIT_SECONDS = 60  # never hang the suite if the test fails before letting go

    def __init__(self, accounts: dict[str, FakeAccount]) -> None:
        super().__init__(accounts)
        self.checks_started = threading.Semaphore(0)
        self._going = threading.Event()
        self._going.set()

    def hold(self) -> None:
        self._going.clear()

    def let_go(self) -> None:
        self._going.set()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        _, obj, method, _ = request["params"]
        if (obj, method) == ("session", "login"):
            self.checks_started.release()
            self._going.wait(self.HOLD_LIMIT_SECONDS)
        return super().handle(request)


@pytest.fixture
def held_rpcd():
    accounts = {"root": FakeAccount(ROOT_PASSWORD, set(), {"usbprintd"})}
    with HeldRpcd(accounts) as fake:
        try:
            yield fake
        finally:
            fake.let_go()


@pytest.fixture
def rpcd_web(tmp_path: Path, held_rpcd: HeldRpcd):
    running = start_web_daemon(tmp_path, extra_env={"USBPRINTD_UBUS_URL": held_rpcd.url},
                               auth="rpcd", password_hash="")
    yield running
    running.daemon.stop()


def test_only_a_few_password_checks_run_at_once(rpcd_web, held_rpcd):
    """While MAX_CONCURRENT_LOGINS checks are held running, every other login is refused as
    busy without reaching the backend, and that refusal is not a failed login of its address."""
    # this address has one failed login left: a busy refusal counted as one would lock it out
    nearly_locked = "127.0.0.30"
    for _ in range(LOGIN_FAILURES_ALLOWED - 1):
        assert rpcd_web.client(source=nearly_locked).login("wrong", "root").status == 401
    for _ in range(LOGIN_FAILURES_ALLOWED - 1):
        assert held_rpcd.checks_started.acquire(timeout=0)
    held_rpcd.hold()

    running = [f"127.0.0.{20 + i}" for i in range(MAX_CONCURRENT_LOGINS)]
    replies: dict[str, Reply] = {}

    def log_in(source: str) -> None:
        replies[source] = rpcd_web.client(source=source).login("wrong", "root")

    threads = [threading.Thread(target=log_in, args=(source,)) for source in running]
    for thread in threads:
        thread.start()
    try:
        for _ in running:
            assert held_rpcd.checks_started.acquire(timeout=30), "a login never reached rpcd"
        refused = [rpcd_web.client(source=source).login("wrong", "root")
                   for source in [nearly_locked, "127.0.0.40", "127.0.0.41"]]
        assert not held_rpcd.checks_started.acquire(timeout=0), "one check too many ran"
    finally:
        held_rpcd.let_go()
        for thread in threads:
            thread.join(30)
    for reply in refused:
        assert reply.status == 429, reply.body
        assert reply.json["error"] == LoginsBusy().args[0]
        assert reply.header("Retry-After") == str(BUSY_RETRY_SECONDS)
    assert sorted(replies) == running
    assert all(reply.status == 401 for reply in replies.values())  # the held checks finished
    assert rpcd_web.client(source=nearly_locked).login(ROOT_PASSWORD, "root").status == 200
