"""Login backends of the running daemon: rpcd (against a stand-in), password, none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from daemon_process import free_port, wait_for
from web_helpers import (
    PASSWORD,
    FakeAccount,
    FakeRpcd,
    start_web_daemon,
    uci_option,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rpcd():
    accounts = {
        "root": FakeAccount("router-root-pw", set(), {"usbprintd", "unauthenticated"}),
        "viewer": FakeAccount("viewer-pw", {"usbprintd"}, set()),
        "stranger": FakeAccount("stranger-pw", {"luci-app-other"}, set()),
    }
    with FakeRpcd(accounts) as fake:
        yield fake


@pytest.fixture
def rpcd_web(tmp_path: Path, rpcd: FakeRpcd):
    running = start_web_daemon(tmp_path, extra_env={"USBPRINTD_UBUS_URL": rpcd.url},
                               auth="rpcd", password_hash="")
    yield running
    running.daemon.stop()


# --- auth 'rpcd' -----------------------------------------------------------------------------


def test_rpcd_login_with_a_router_account_gives_full_access(rpcd_web, rpcd):
    client = rpcd_web.client()
    reply = client.login("router-root-pw", username="root")
    assert reply.status == 200
    assert reply.json["user"] == "root" and reply.json["can_write"] is True
    assert reply.json["auth"] == "rpcd"
    [sid] = rpcd.sessions
    assert client.cookies["usbprintd_session"] == sid
    assert client.post("/api/settings", {"queue_limit": 4}).status == 200
    assert ("0" * 32, "session", "login") in rpcd.calls
    assert (sid, "session", "access") in rpcd.calls


def test_rpcd_refuses_wrong_passwords_and_unknown_users(rpcd_web, rpcd):
    client = rpcd_web.client()
    assert client.login("wrong", username="root").status == 401
    assert client.login("router-root-pw", username="nobody").status == 401
    assert rpcd.sessions == {}


def test_rpcd_read_only_account_may_look_but_not_change_and_may_log_out(rpcd_web, rpcd):
    client = rpcd_web.client()
    reply = client.login("viewer-pw", username="viewer")
    assert reply.status == 200 and reply.json["can_write"] is False
    assert client.get("/api/printers").status == 200
    refused = client.post("/api/settings", {"queue_limit": 4})
    assert refused.status == 403
    assert "not change" in refused.json["error"]
    assert uci_option(rpcd_web.config, "main", "queue_limit") == "8"
    stolen = dict(client.cookies)
    without_token = client.post("/api/logout", csrf=False)
    assert without_token.status == 403 and "CSRF" in without_token.json["error"]
    assert client.post("/api/logout").status == 204
    assert rpcd.sessions == {}
    assert rpcd_web.client(cookies=stolen).get("/api/printers").status == 401


def test_rpcd_account_without_the_acl_group_cannot_log_in(rpcd_web, rpcd):
    client = rpcd_web.client()
    assert client.login("stranger-pw", username="stranger").status == 401
    assert rpcd.sessions == {}  # the session rpcd opened was destroyed again
    assert client.get("/api/printers").status == 401


def test_rpcd_logout_destroys_the_rpcd_session(rpcd_web, rpcd):
    client = rpcd_web.client()
    client.login("router-root-pw", username="root")
    stolen = dict(client.cookies)
    assert client.post("/api/logout").status == 204
    assert rpcd.sessions == {}
    assert rpcd_web.client(cookies=stolen).get("/api/printers").status == 401


def test_a_session_that_expired_in_rpcd_stops_working(rpcd_web, rpcd):
    client = rpcd_web.client()
    client.login("router-root-pw", username="root")
    rpcd.sessions.clear()  # rpcd's timeout ran out
    wait_for(lambda: client.get("/api/printers").status == 401, timeout=15, interval=0.5)


def test_rpcd_unreachable_is_503_not_a_login(tmp_path):
    dead_url = f"http://127.0.0.1:{free_port()}/ubus"
    web = start_web_daemon(tmp_path, extra_env={"USBPRINTD_UBUS_URL": dead_url},
                           auth="rpcd", password_hash="")
    try:
        reply = web.client().login("anything", username="root")
        assert reply.status == 503
        assert "rpcd is not reachable" in reply.json["error"]
    finally:
        web.daemon.stop()


# --- auth 'none' and 'password' --------------------------------------------------------------


def test_auth_none_on_loopback_needs_no_login_but_still_csrf(tmp_path):
    web = start_web_daemon(tmp_path, auth="none")
    try:
        client = web.client()
        assert client.get("/api/printers").status == 200
        assert client.get("/").status == 200
        assert client.post("/api/settings", {"queue_limit": 2}).status == 403
        client.csrf = client.get("/api/session").json["csrf_token"]
        assert client.post("/api/settings", {"queue_limit": 2}).status == 200
    finally:
        web.daemon.stop()


def test_auth_none_refuses_foreign_host_names_against_dns_rebinding(tmp_path):
    web = start_web_daemon(tmp_path, auth="none")
    try:
        client = web.client()
        rebound = client.get("/api/printers", headers={"Host": f"evil.example:{web.web_port}"})
        assert rebound.status == 403
        assert client.get("/", headers={"Host": f"evil.example:{web.web_port}"}).status == 403
        assert client.get("/api/printers", headers={"Host": f"localhost:{web.web_port}"}
                          ).status == 200
        assert client.get("/api/printers", headers={"Host": "[broken"}).status == 403
        token = client.get("/api/session").json["csrf_token"]
        assert client.post("/api/settings", {"queue_limit": 2}, headers={
            "X-CSRF-Token": token, "Origin": "http://[broken"}).status == 403
    finally:
        web.daemon.stop()


def test_auth_none_is_not_honoured_off_loopback(tmp_path):
    web = start_web_daemon(tmp_path, auth="none", web_listen="0.0.0.0")
    try:
        client = web.client()
        assert client.get("/api/printers").status == 401
        assert client.login().status == 200  # downgraded to the password
        web.daemon.wait_log(r"'none' is only allowed when web_listen is a loopback address")
    finally:
        web.daemon.stop()


def test_changing_the_auth_mode_ends_existing_sessions(tmp_path, rpcd):
    web = start_web_daemon(tmp_path, extra_env={"USBPRINTD_UBUS_URL": rpcd.url})
    try:
        client = web.logged_in()
        web.daemon.write_config(web.config.replace("option auth 'password'",
                                                   "option auth 'rpcd'"))
        web.daemon.reload()
        wait_for(lambda: client.get("/api/printers").status == 401)
        assert client.login().status == 401  # the page password is no router account
        assert client.login("router-root-pw", username="root").status == 200
    finally:
        web.daemon.stop()


def set_password(config: Path, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usbprintd", "set-password", "--config", str(config), "--stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=60, cwd=REPO)


def test_set_password_stores_a_pbkdf2_hash_the_page_accepts_after_reload(tmp_path):
    web = start_web_daemon(tmp_path)
    try:
        result = set_password(web.daemon.config_path, "a brand new secret")
        assert result.returncode == 0, result.stderr
        stored = uci_option(web.config, "main", "password_hash")
        scheme, iterations, _salt, _key = stored.split("$")
        assert scheme == "pbkdf2_sha256" and int(iterations) >= 100_000
        assert "a brand new secret" not in web.config
        web.daemon.reload()
        web.daemon.wait_log("SIGHUP")
        client = web.client()
        wait_for(lambda: client.login("a brand new secret").status == 200)
        assert web.client(source="127.0.0.3").login(PASSWORD).status == 401
    finally:
        web.daemon.stop()


def test_set_password_refuses_short_passwords_and_keeps_the_old_hash(tmp_path):
    config = tmp_path / "usbprintd.conf"
    config.write_text("config usbprintd 'main'\n\toption password_hash 'old'\n")
    result = set_password(config, "short")
    assert result.returncode == 1
    assert "at least" in result.stderr
    assert "option password_hash 'old'" in config.read_text()


def test_set_password_creates_the_global_section_when_missing(tmp_path):
    config = tmp_path / "usbprintd.conf"
    config.write_text("config printer 'p'\n\toption port '9100'\n")
    assert set_password(config, "long enough password").returncode == 0
    text = config.read_text()
    assert "config usbprintd 'main'" in text
    assert uci_option(text, "main", "password_hash").startswith("pbkdf2_sha256$")
    assert "config printer 'p'" in text
