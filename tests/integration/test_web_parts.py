"""In-process checks of the web page's parts that the HTTP tests cannot reach precisely:
PBKDF2 without OpenSSL, session and rate-limit clocks, rpcd reply parsing, file names."""

from __future__ import annotations

import hashlib

import pytest

from usbprintd.web import auth, passwords
from usbprintd.web.firmware import FirmwareError, safe_name
from usbprintd.web.ubus import UbusError, _parse_jsonrpc_reply


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("password", [b"", b"pw", "pässwörd".encode(), b"x" * 65, b"y" * 200])
def test_builtin_pbkdf2_matches_openssl(password):
    salt = b"0123456789abcdef"
    expected = hashlib.pbkdf2_hmac("sha256", password, salt, 1000, 32)
    assert passwords._pbkdf2_sha256_builtin(password, salt, 1000) == expected


def test_hash_made_with_openssl_verifies_without_it(monkeypatch):
    stored = passwords.hash_password("open sesame")
    monkeypatch.delattr(hashlib, "pbkdf2_hmac")
    assert passwords.verify_password("open sesame", stored)
    assert not passwords.verify_password("open sesame!", stored)


@pytest.mark.parametrize("stored", [
    "", "garbage", "pbkdf2_sha256$1000$c2FsdA==$" + "A" * 44,  # too few iterations
    "md5$200000$c2FsdA==$" + "A" * 44, "pbkdf2_sha256$200000$!!$" + "A" * 44,
    "pbkdf2_sha256$200000$c2FsdA==$c2hvcnQ=",  # wrong key length
])
def test_malformed_or_weak_hashes_never_match(stored):
    assert not passwords.verify_password("", stored)
    assert not passwords.verify_password("anything", stored)


def test_hashes_are_salted():
    assert passwords.hash_password("same") != passwords.hash_password("same")
    with pytest.raises(ValueError):
        passwords.hash_password("x", iterations=1000)


def test_local_sessions_expire_when_idle_and_at_the_absolute_limit():
    clock = Clock()
    sessions = auth.LocalSessions(clock)
    idle = sessions.create("admin")
    clock.now += auth.SESSION_IDLE_SECONDS + 1
    assert sessions.get(idle.sid) is None
    busy = sessions.create("admin")
    for _ in range(auth.SESSION_MAX_SECONDS // 1800):
        clock.now += 1800
        assert sessions.get(busy.sid) is not None
    clock.now += 1800
    assert sessions.get(busy.sid) is None


def test_local_sessions_are_bounded_oldest_first():
    sessions = auth.LocalSessions(Clock())
    first = sessions.create("admin")
    for _ in range(auth.MAX_SESSIONS):
        sessions.create("admin")
    assert sessions.get(first.sid) is None


def test_login_throttle_opens_again_after_the_window():
    clock = Clock()
    throttle = auth.LoginThrottle(clock)
    for _ in range(auth.LOGIN_FAILURES_ALLOWED):
        throttle.reserve("10.0.0.1")  # each attempt counts as it starts
        clock.now += 1
    with pytest.raises(auth.Throttled) as throttled:
        throttle.reserve("10.0.0.1")
    wait = throttled.value.retry_after
    assert 0 < wait <= auth.LOGIN_WINDOW_SECONDS
    throttle.reserve("10.0.0.2")
    clock.now += wait
    throttle.reserve("10.0.0.1")


def test_login_throttle_forgets_a_success_and_an_attempt_that_could_not_be_checked():
    throttle = auth.LoginThrottle(Clock())
    for _ in range(auth.LOGIN_FAILURES_ALLOWED - 1):
        throttle.reserve("10.0.0.1")
    unchecked = throttle.reserve("10.0.0.1")
    throttle.cancel("10.0.0.1", unchecked)  # e.g. rpcd was not reachable
    throttle.reserve("10.0.0.1")
    throttle.succeeded("10.0.0.1")
    for _ in range(auth.LOGIN_FAILURES_ALLOWED):
        throttle.reserve("10.0.0.1")


def test_csrf_tokens_are_per_session_and_per_process():
    settings = auth.GlobalSettings(auth="password", password_hash="x")
    gate, other = auth.Gatekeeper(lambda: settings), auth.Gatekeeper(lambda: settings)
    one, two = auth.Session("a" * 43, "admin", True), auth.Session("b" * 43, "admin", True)
    assert gate.csrf_valid(one, gate.csrf_token(one))
    assert not gate.csrf_valid(two, gate.csrf_token(one))
    assert not other.csrf_valid(one, gate.csrf_token(one))
    assert not gate.csrf_valid(one, None) and not gate.csrf_valid(one, "")


def test_jsonrpc_replies_of_uhttpd():
    assert _parse_jsonrpc_reply(b'{"jsonrpc":"2.0","id":1,"result":[0,{"access":true}]}',
                                "x") == {"access": True}
    assert _parse_jsonrpc_reply(b'{"jsonrpc":"2.0","id":1,"result":[0]}', "x") == {}
    with pytest.raises(UbusError) as denied:
        _parse_jsonrpc_reply(b'{"jsonrpc":"2.0","id":1,"result":[6]}', "x")
    assert denied.value.denied
    with pytest.raises(UbusError) as no_session:
        _parse_jsonrpc_reply(
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Access denied"}}', "x")
    assert no_session.value.denied
    with pytest.raises(UbusError) as broken:
        _parse_jsonrpc_reply(b"<html>", "x")
    assert not broken.value.denied


@pytest.mark.parametrize("name, expected", [
    ("sihp1018.dl", "sihp1018.dl"),
    ("C:\\Users\\me\\sihpP1005.dl", "sihpP1005.dl"),
    ("../../etc/passwd", "passwd"),
    ("fw\0.dl", "fw_.dl"),
    ("ünïcode.dl", "_n_code.dl"),
])
def test_safe_names(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["", ".", "..", "...", "/", "a/..", "___", "x" * 65])
def test_unusable_names(name):
    with pytest.raises(FirmwareError):
        safe_name(name)


class RecordingRegistry:
    """Stands in for the registry behind `Core.call`: counts firmware notifications."""

    def __init__(self, settings) -> None:
        from usbprintd.config import Config

        self.config = Config(settings=settings)
        self.firmware_notices = 0

    def firmware_changed(self) -> None:
        self.firmware_notices += 1


class DirectCore:
    def __init__(self, registry) -> None:
        from usbprintd.eventlog import EventLog

        self.registry = registry
        self.events = EventLog()

    def call(self, function, timeout: float = 10.0):
        return function(self.registry)


def wsgi_request(app, method: str, path: str, body: bytes = b"", **headers: str):
    import io
    from wsgiref.util import setup_testing_defaults

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_HOST": "127.0.0.1",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    setup_testing_defaults(environ)
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)


def test_firmware_uploads_and_deletions_notify_the_registry(tmp_path):
    from usbprintd.config import GlobalSettings
    from usbprintd.web.app import WebApp, find_www

    settings = GlobalSettings(auth="none", web_listen="127.0.0.1",
                              firmware_dir=str(tmp_path / "fw"))
    registry = RecordingRegistry(settings)
    web = WebApp(DirectCore(registry), lambda: settings, find_www())
    token = web.gate.csrf_token(web.gate.session(None))
    status, _ = wsgi_request(web.wsgi, "PUT", "/api/firmware/sihp1020.dl", b"blob",
                             X_CSRF_TOKEN=token)
    assert status == 201 and registry.firmware_notices == 1
    status, _ = wsgi_request(web.wsgi, "PUT", "/api/firmware/..", b"blob", X_CSRF_TOKEN=token)
    assert status == 400 and registry.firmware_notices == 1
    status, _ = wsgi_request(web.wsgi, "DELETE", "/api/firmware/sihp1020.dl",
                             X_CSRF_TOKEN=token)
    assert status == 204 and registry.firmware_notices == 2


def test_set_password_on_a_terminal_asks_twice(monkeypatch):
    import getpass

    from usbprintd.web import cli

    answers = iter(["first password", "other password"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    with pytest.raises(cli.PasswordRefused, match="differ"):
        cli.read_password(from_stdin=False)
    answers = iter(["same password", "same password"])
    assert cli.read_password(from_stdin=False) == "same password"


def test_a_form_login_while_the_checks_are_busy_goes_back_with_the_busy_message(tmp_path):
    import io
    import re
    from urllib.parse import urlsplit
    from wsgiref.util import setup_testing_defaults

    from usbprintd.config import GlobalSettings
    from usbprintd.web.app import WebApp, find_www

    settings = GlobalSettings(auth="password", password_hash=passwords.hash_password("pw pw pw"),
                              web_listen="127.0.0.1", firmware_dir=str(tmp_path / "fw"))
    web = WebApp(DirectCore(RecordingRegistry(settings)), lambda: settings, find_www())

    def call(method: str, url: str, body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
        path, _, query = url.partition("?")
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                   "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(body)}
        if body:
            environ.update({"CONTENT_TYPE": "application/x-www-form-urlencoded",
                            "CONTENT_LENGTH": str(len(body))})
        setup_testing_defaults(environ)
        started: list[tuple[str, list[tuple[str, str]]]] = []
        page = b"".join(web.wsgi(environ, lambda s, h, exc_info=None: started.append((s, h))))
        return started[0][0], dict(started[0][1]), page

    running = [web.gate._checks.acquire(blocking=False)
               for _ in range(auth.MAX_CONCURRENT_LOGINS)]  # as if other checks ran now
    assert all(running)
    status, headers, _ = call("POST", "/api/login", b"password=pw+pw+pw&next=/log")
    assert status.startswith("303")
    assert headers["Location"] == "/login?next=/log&error=busy"
    assert headers["Retry-After"] == str(auth.BUSY_RETRY_SECONDS)

    # the page the browser lands on shows the same words a scripted login gets as its error
    location = urlsplit(headers["Location"])
    status, _, page = call("GET", f"{location.path}?{location.query}")
    assert status.startswith("200")
    shown = re.search(rb'<div class="alert-message error" id="login-error">([^<]*)</div>', page)
    assert shown is not None, page
    assert shown.group(1).decode() == str(auth.LoginsBusy())
