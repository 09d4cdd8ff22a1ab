"""The web page's JSON API over real HTTP against the daemon running as a real process."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from daemon_process import port_accepts, send_with_nc, wait_for
from web_helpers import (
    PASSWORD,
    spool_printer,
    start_web_daemon,
    uci_option,
)


@pytest.fixture
def web(tmp_path: Path):
    printer, spool, port = spool_printer(tmp_path, "virtual")
    running = start_web_daemon(tmp_path, printer)
    wait_for(lambda: port_accepts(port))
    running.spool, running.printer_port = spool, port
    yield running
    running.daemon.stop()


def spooled(spool: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(spool.iterdir()) if p.suffix == ".prn"]


# --- login, sessions, CSRF ------------------------------------------------------------------


def test_everything_but_login_needs_a_session(web):
    client = web.client()
    for method, path in [("GET", "/api/printers"), ("GET", "/api/printers/virtual"),
                         ("POST", "/api/printers/virtual"), ("DELETE", "/api/printers/virtual"),
                         ("GET", "/api/firmware"), ("PUT", "/api/firmware/x.dl"),
                         ("DELETE", "/api/firmware/x.dl"), ("GET", "/api/settings"),
                         ("POST", "/api/settings"), ("GET", "/api/events"),
                         ("POST", "/api/logout"), ("GET", "/api/session")]:
        reply = client.request(method, path, raw=b"")
        assert reply.status == 401, (method, path)
        assert reply.json == {"error": "login required"}
    page = client.get("/settings")
    assert page.status == 303
    assert page.header("Location").endswith("/login?next=/settings")
    assert client.get("/login").status == 200
    assert client.get("/static/app.js").status == 200


def test_wrong_password_is_refused_and_right_one_gives_a_strict_cookie(web):
    client = web.client()
    assert client.login("not the password").status == 401
    assert not client.cookies
    reply = client.login()
    assert reply.status == 200
    cookie = reply.header("Set-Cookie")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Max-Age=" in cookie
    assert reply.json["user"] and len(reply.json["csrf_token"]) >= 32
    assert client.get("/api/printers").status == 200
    assert client.get("/api/session").json["csrf_token"] == client.csrf


def test_plain_html_forms_work_without_script(web):
    client = web.client()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = client.post("/api/login", raw=b"password=nope&next=/log", headers=form)
    assert wrong.status == 303
    assert wrong.header("Location") == "/login?next=/log&error=denied"
    assert "wrong user name or password" in client.get(wrong.header("Location")).body.decode()
    assert "call 555" not in client.get("/login?error=call+555").body.decode()
    body = f"password={PASSWORD.replace(' ', '+')}&next=/log".encode()
    right = client.post("/api/login", raw=body, headers=form)
    assert right.status == 303 and right.header("Location") == "/log"
    token = client.get("/api/session").json["csrf_token"]
    saved = client.post("/api/settings", raw=f"queue_limit=5&csrf_token={token}".encode(),
                        headers=form, csrf=False)
    assert saved.status == 200
    assert uci_option(web.config, "main", "queue_limit") == "5"
    offsite = client.post("/api/login", raw=body + b"&next=//evil.example/", headers=form)
    assert offsite.header("Location") == "/"


def test_logout_ends_the_session(web):
    client = web.logged_in()
    stolen = dict(client.cookies)
    assert client.post("/api/logout").status == 204
    assert client.get("/api/printers").status == 401
    replay = web.client(cookies=stolen)
    assert replay.get("/api/printers").status == 401


def test_changes_without_the_csrf_token_are_forbidden(web):
    client = web.logged_in()
    no_token = client.post("/api/printers/virtual", {"name": "x"}, csrf=False)
    assert no_token.status == 403
    assert "CSRF" in no_token.json["error"]
    wrong = client.post("/api/printers/virtual", {"name": "x"},
                        headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status == 403
    other_site = client.post("/api/printers/virtual", {"name": "x"},
                             headers={"Origin": "http://evil.example"})
    assert other_site.status == 403
    assert other_site.json["error"] == "request from another site refused"
    assert client.get("/api/printers/virtual").json["printer"]["name"] == "virtual"
    assert client.post("/api/printers/virtual", {"name": "Renamed"}).status == 200


def test_login_from_another_site_is_refused(web):
    client = web.client()
    reply = client.post("/api/login", {"password": PASSWORD},
                        headers={"Origin": "http://evil.example"})
    assert reply.status == 403
    assert not client.cookies


def test_failed_logins_are_rate_limited_per_client(web):
    attacker = web.client()
    for _ in range(5):
        assert attacker.login("guess").status == 401
    blocked = attacker.login()  # even the right password
    assert blocked.status == 429
    assert int(blocked.header("Retry-After")) > 0
    assert "too many" in blocked.json["error"]
    forged = attacker.post("/api/login", {"password": PASSWORD},
                           headers={"X-Forwarded-For": "10.9.8.7"})
    assert forged.status == 429
    neighbour = web.client(source="127.0.0.2")
    assert neighbour.login().status == 200


def test_security_headers_on_pages_api_static_and_errors(web):
    client = web.logged_in()
    for path in ["/", "/login", "/api/printers", "/static/style.css", "/api/nothing", "/nope"]:
        reply = client.get(path)
        assert reply.header("X-Frame-Options") == "DENY", path
        assert reply.header("X-Content-Type-Options") == "nosniff", path
        csp = reply.header("Content-Security-Policy")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
    page = client.get("/").body.decode()
    assert "<script src=\"/static/app.js\"" in page
    assert "<script>" not in page and "onclick" not in page


def test_errors_are_json_with_proper_status(web):
    client = web.logged_in()
    assert client.get("/api/nothing").status == 404
    assert "error" in client.get("/api/nothing").json
    assert client.get("/api/printers/ghost").status == 404
    assert client.post("/api/printers/ghost", {"name": "x"}).status == 404
    wrong_method = client.request("PATCH", "/api/settings", {"autoadd": True})
    assert wrong_method.status == 405
    assert "error" in wrong_method.json
    not_json = client.post("/api/settings", raw=b"{broken",
                           headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    assert "error" in not_json.json
    too_big = client.post("/api/settings", raw=b"[" + b"1," * 200_000 + b"1]",
                          headers={"Content-Type": "application/json"})
    assert too_big.status == 413
    assert "error" in too_big.json


# --- printer settings -------------------------------------------------------------------------


def test_invalid_printer_settings_come_back_per_field_and_change_nothing(web):
    client = web.logged_in()
    before = web.config
    reply = client.post("/api/printers/virtual", {"port": "abc", "bind": "nowhere",
                                                  "enabled": "maybe", "colour": "1"})
    assert reply.status == 400
    fields = reply.json["fields"]
    assert set(fields) == {"port", "bind", "enabled", "colour"}
    assert "whole number" in fields["port"]
    assert web.config == before
    assert port_accepts(web.printer_port)


def test_text_that_uci_cannot_store_is_refused_per_field(web):
    client = web.logged_in()
    reply = client.post("/api/printers/virtual", {"name": "two\nlines", "_": None})
    assert reply.status == 400
    assert "control characters" in reply.json["fields"]["name"]
    assert reply.json["fields"]["_"] == "unknown setting"
    settings = client.post("/api/settings", {"_": 1})
    assert settings.status == 400 and settings.json["fields"] == {"_": "unknown setting"}
    assert client.get("/api/printers/virtual").json["printer"]["name"] == "virtual"


def test_a_port_used_by_another_printer_is_refused(tmp_path):
    first, _, first_port = spool_printer(tmp_path, "first")
    second, _, _ = spool_printer(tmp_path, "second")
    web = start_web_daemon(tmp_path, first + second)
    try:
        client = web.logged_in()
        reply = client.post("/api/printers/second", {"port": first_port})
        assert reply.status == 400
        assert "already used" in reply.json["fields"]["port"]
    finally:
        web.daemon.stop()


def test_disabling_closes_the_port_and_is_saved_as_an_explicit_zero(web):
    client = web.logged_in()
    assert client.post("/api/printers/virtual", {"enabled": False}).status == 200
    wait_for(lambda: not port_accepts(web.printer_port))
    assert uci_option(web.config, "virtual", "enabled") == "0"
    printer = client.get("/api/printers/virtual").json["printer"]
    assert printer["state"] == "disabled" and printer["listening"] == []
    assert client.post("/api/printers/virtual", {"enabled": True}).status == 200
    wait_for(lambda: port_accepts(web.printer_port))
    assert uci_option(web.config, "virtual", "enabled") == "1"


def test_port_change_applies_live_new_port_prints_old_refuses(web):
    from daemon_process import free_port

    client = web.logged_in()
    new_port = free_port()
    reply = client.post("/api/printers/virtual", {"port": str(new_port), "bidirectional": True})
    assert reply.status == 200
    assert reply.json["printer"]["settings"]["port"] == new_port
    wait_for(lambda: port_accepts(new_port))
    assert not port_accepts(web.printer_port)
    send_with_nc(new_port, b"job on the new port\n")
    wait_for(lambda: spooled(web.spool) == [b"job on the new port\n"])
    assert uci_option(web.config, "virtual", "port") == str(new_port)
    assert uci_option(web.config, "virtual", "bidirectional") == "1"


def test_changing_one_printer_leaves_a_job_on_another_untouched(tmp_path):
    busy, busy_spool, busy_port = spool_printer(tmp_path, "busy")
    other, _, other_port = spool_printer(tmp_path, "other")
    web = start_web_daemon(tmp_path, busy + other)
    try:
        client = web.logged_in()
        wait_for(lambda: port_accepts(busy_port))
        with socket.create_connection(("127.0.0.1", busy_port)) as job:
            job.sendall(b"first half ")
            wait_for(lambda: client.get("/api/printers/busy").json["printer"]["active_job"])
            from daemon_process import free_port

            assert client.post("/api/printers/other", {"port": free_port(),
                                                       "name": "Moved"}).status == 200
            assert client.post("/api/printers/other", {"enabled": False}).status == 200
            wait_for(lambda: not port_accepts(other_port))
            job.sendall(b"second half")
            job.shutdown(socket.SHUT_WR)
            job.recv(1)
        wait_for(lambda: spooled(busy_spool) == [b"first half second half"])
        history = client.get("/api/printers/busy").json["printer"]["jobs"]["history"]
        assert history[0]["outcome"] == "done"
    finally:
        web.daemon.stop()


def test_live_status_shows_the_running_job_with_client_bytes_and_rate(web):
    client = web.logged_in()
    with socket.create_connection(("127.0.0.1", web.printer_port)) as job:
        host, port = job.getsockname()
        local = f"{host}:{port}"
        job.sendall(b"x" * 5000)
        active = wait_for(lambda: (client.get("/api/printers").json["printers"][0]
                                   ["active_job"] or {}).get("bytes_in") == 5000
                          and client.get("/api/printers").json["printers"][0]["active_job"])
        assert active["client"] == local
        assert active["outcome"] == "printing"
        assert active["rate"] > 0
        job.shutdown(socket.SHUT_WR)
        job.recv(1)
    printer = wait_for(lambda: (p := client.get("/api/printers").json["printers"][0])
                       ["jobs"]["history"] and p)
    assert printer["active_job"] is None
    assert printer["jobs"]["counts"]["done"] == 1
    assert printer["jobs"]["history"][0]["bytes_in"] == 5000


def test_forget_refuses_a_present_printer_and_removes_an_absent_one(tmp_path):
    gone = tmp_path / "unplugged"
    gone.mkdir()
    present, _, _ = spool_printer(tmp_path, "present")
    from daemon_process import free_port, printer_section

    absent = printer_section("absent", gone, free_port())
    web = start_web_daemon(tmp_path, present + absent)
    try:
        gone.rmdir()
        client = web.logged_in()
        wait_for(lambda: client.get("/api/printers/absent").json["printer"]["state"] == "absent")
        refused = client.request("DELETE", "/api/printers/present")
        assert refused.status == 409
        assert "absent" in refused.json["error"]
        assert client.request("DELETE", "/api/printers/absent").status == 204
        assert client.get("/api/printers/absent").status == 404
        assert "absent" not in web.config
        assert "config printer 'present'" in web.config
    finally:
        web.daemon.stop()


# --- global settings and events ---------------------------------------------------------------


def test_global_settings_are_validated_saved_and_applied(web):
    client = web.logged_in()
    bad = client.post("/api/settings", {"queue_limit": "-1", "log_level": "loud",
                                        "web_port": "80"})
    assert bad.status == 400
    assert set(bad.json["fields"]) == {"queue_limit", "log_level", "web_port"}
    good = client.post("/api/settings", {"queue_limit": 0, "idle_timeout": "30",
                                         "autoadd": False, "log_level": "warning"})
    assert good.status == 200
    settings = client.get("/api/settings").json["settings"]
    assert settings["queue_limit"] == 0 and settings["idle_timeout"] == 30
    assert settings["autoadd"] is False and settings["log_level"] == "warning"
    assert "password_hash" not in settings
    assert uci_option(web.config, "main", "queue_limit") == "0"
    assert uci_option(web.config, "main", "autoadd") == "0"
    # queue_limit 0: a second client is refused while the first one prints
    with socket.create_connection(("127.0.0.1", web.printer_port)) as first:
        first.sendall(b"busy")
        wait_for(lambda: not port_accepts(web.printer_port))
    wait_for(lambda: port_accepts(web.printer_port))


def test_event_log_holds_recent_daemon_events(web):
    client = web.logged_in()
    events = client.get("/api/events?limit=50").json["events"]
    messages = [event["message"] for event in events]
    assert any("serving 'virtual'" in m for m in messages)
    assert any("logged in" in m for m in messages)
    assert {"time", "level", "source", "message"} <= set(events[-1])
    assert client.get("/api/events?limit=x").status == 400


# --- web listener -----------------------------------------------------------------------------


def test_reload_moves_the_web_page_only_when_its_address_changes(web):
    from daemon_process import free_port

    client = web.logged_in()
    web.daemon.write_config(web.config.replace("option queue_limit '8'",
                                               "option queue_limit '3'"))
    web.daemon.reload()
    web.daemon.wait_log(r"SIGHUP")
    time.sleep(0.5)
    assert client.get("/api/printers").status == 200  # same listener, same session
    assert "web page moves" not in web.daemon.log()
    new_port = free_port()
    web.daemon.write_config(web.config.replace(f"option web_port '{web.web_port}'",
                                               f"option web_port '{new_port}'"))
    web.daemon.reload()
    web.daemon.wait_log(rf"web page: http://127\.0\.0\.1:{new_port}/")
    assert not port_accepts(web.web_port)
    moved = web.client()
    moved.port = new_port
    assert moved.login().status == 200


def test_the_web_page_turns_off_and_on_again_without_a_restart(web):
    from daemon_process import free_port

    web.daemon.write_config(web.config.replace(f"option web_port '{web.web_port}'",
                                               "option web_port '0'"))
    web.daemon.reload()
    web.daemon.wait_log(r"web page off \(web_port 0\)")
    wait_for(lambda: not port_accepts(web.web_port))
    send_with_nc(web.printer_port, b"printed while the page is off")
    wait_for(lambda: spooled(web.spool) == [b"printed while the page is off"])
    new_port = free_port()
    web.daemon.write_config(web.config.replace("option web_port '0'",
                                               f"option web_port '{new_port}'"))
    web.daemon.reload()
    web.daemon.wait_log(rf"web page: http://127\.0\.0\.1:{new_port}/")
    back = web.client()
    back.port = new_port
    assert back.login().status == 200
    assert web.daemon.process.poll() is None


def daemon_threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_a_connection_flood_is_capped_and_the_page_recovers(web):
    web.daemon.wait_log(r"mDNS: announcing with")  # its thread is counted in `before`
    before = daemon_threads(web.daemon.pid)
    flood = [socket.create_connection(("127.0.0.1", web.web_port)) for _ in range(40)]
    try:
        for sock in flood:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # and then silence
        time.sleep(1)
        assert daemon_threads(web.daemon.pid) <= before + 16
    finally:
        for sock in flood:
            sock.close()
    wait_for(lambda: web.client().get("/login").status == 200, timeout=15)


def test_web_page_on_ipv6_loopback(tmp_path):
    web = start_web_daemon(tmp_path, web_listen="::1")
    try:
        web.daemon.wait_log(rf"web page: http://\[::1\]:{web.web_port}/")
        client = web.client(host="::1")
        assert client.login().status == 200
        assert client.get("/api/printers").status == 200
        assert not port_accepts(web.web_port)  # not on 127.0.0.1
    finally:
        web.daemon.stop()


def test_page_is_served_while_a_slow_page_request_hangs(web):
    """One silent browser connection must not block the page for everyone else."""
    hung = socket.create_connection(("127.0.0.1", web.web_port))
    try:
        hung.sendall(b"GET / HTTP/1.1\r\n")  # never finishes its headers
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(web.client().get("/login").status))
        thread.start()
        thread.join(5)
        assert result == [200]
    finally:
        hung.close()


# --- memory -----------------------------------------------------------------------------------


def test_using_every_page_never_loads_openssl(web):
    """OpenSSL's libcrypto and libssl (about 4 MiB on a router) stay unloaded however the page
    is used. How much memory the daemon takes is a benchmark figure, not a test: `make bench`
    reports the RSS after serving every page and API endpoint against its 24 MiB target."""
    client = web.logged_in()
    for path in ["/", "/printers/virtual", "/firmware", "/settings", "/log", "/api/printers",
                 "/api/firmware", "/api/settings", "/api/events", "/static/app.js",
                 "/static/style.css"]:
        assert client.get(path).status == 200, path
    maps = Path(f"/proc/{web.daemon.pid}/maps").read_text()
    assert "libcrypto" not in maps and "libssl" not in maps
