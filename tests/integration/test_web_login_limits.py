"""Concurrent logins against the running daemon: the per-address limit holds for attempts
that run at the same time, and only a few password checks (PBKDF2, seconds of CPU on a
router) run at once, whoever asks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from web_helpers import PASSWORD, Reply, start_web_daemon

from usbprintd.web.auth import LOGIN_FAILURES_ALLOWED

CONCURRENT_CLIENTS = 6  # three times the password checks the daemon runs at once


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


def test_only_a_few_password_checks_run_at_once(web):
    sources = [f"127.0.0.{20 + i}" for i in range(CONCURRENT_CLIENTS)]
    replies = at_once(web, sources)
    statuses = [reply.status for reply in replies]
    assert set(statuses) <= {401, 429}
    assert 401 in statuses
    busy = [reply for reply in replies if reply.status == 429]
    assert busy, "every password check ran at the same time"
    for reply in busy:
        assert "other logins" in reply.json["error"]
        assert reply.header("Retry-After") == "1"
    # a refusal for being busy is not a failed login of that address
    for source, reply in zip(sources, replies, strict=True):
        if reply.status == 429:
            assert web.client(source=source).login(PASSWORD).status == 200
            break
