"""Malformed input to the web page of the running daemon: arbitrary JSON and form fields for the
printer and settings APIs, arbitrary firmware names, and a firmware_dir that is not usable.

Whatever a browser or a script sends, the answer is a per-field refusal (400) or a change that
the daemon reads back from its own file: never an internal error, never a config the daemon
can no longer load, never a printer that stops printing because of a neighbour's edit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from daemon_process import port_accepts, send_job, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_helpers import spool_printer, start_web_daemon

from usbprintd.config import parse_config
from usbprintd.uci import FileStore

WEB_FUZZ = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web-fuzz")
    printer_a, _, port_a = spool_printer(workdir, "a")
    printer_b, _, port_b = spool_printer(workdir, "b")
    running = start_web_daemon(workdir, printer_a + printer_b)
    wait_for(lambda: port_accepts(port_a) and port_accepts(port_b))
    running.ports = (port_a, port_b)
    running.client_ = running.logged_in()
    yield running
    running.daemon.stop()


def control_text(max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


def json_values(ports: tuple[int, int]) -> st.SearchStrategy:
    """JSON scalars and containers, from plausible to hostile. Ports stay within the two this
    test owns (or are invalid), so the fuzz never takes a port another program uses."""
    return st.one_of(
        control_text(), st.booleans(), st.none(),
        st.sampled_from([*ports, str(ports[0]), -1, 70000, 10**30, 1.5, "0x10", "", " ", "1",
                         "0", "127.0.0.1", "::1", "nowhere", "a/b", "..", "sihp1018.dl",
                         "two\nlines", "\x1b[31mred", "tab\there", "\u2028", "'quote\\"]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                            max_size=2),
    )


def check_still_sound(web) -> None:
    """The daemon is up, its file loads, and every valid printer still prints."""
    assert web.daemon.alive
    sections = FileStore(web.daemon.config_path).load()  # raises if the daemon wrote junk
    config = parse_config(sections)
    state = web.client_.get("/api/printers")
    assert state.status == 200 and state.json["config_error"] == ""
    for printer in config.printers:
        if printer.valid and printer.enabled:
            host = printer.bind or "127.0.0.1"
            wait_for(lambda p=printer, h=host: port_accepts(p.port, h), timeout=5)


def settle_printers(web) -> None:
    """Back to a known state (both printers enabled on their own ports), so one example (or a
    failed test) does not change what the next one starts from."""
    for section, port in zip(("a", "b"), web.ports, strict=True):
        reply = web.client_.post(f"/api/printers/{section}",
                                 {"enabled": True, "port": port, "bind": "127.0.0.1"})
        assert reply.status == 200, reply.body


HOSTILE_TEXT = ["two\nlines", "\x1b[31mred", "tab\there", "\u2028", "'quote\\", "\0", " "]


def printer_forms(ports: tuple[int, int]) -> st.SearchStrategy[dict]:
    """Mostly plausible edits (so a hostile value is not masked by another bad field), with
    arbitrary keys and values mixed in."""
    text = control_text() | st.sampled_from(HOSTILE_TEXT)
    plausible = st.one_of(
        st.tuples(st.just("name"), text),
        st.tuples(st.just("enabled"), st.booleans() | st.sampled_from(["1", "0", "yes"])),
        st.tuples(st.just("port"), st.sampled_from(ports)),
        st.tuples(st.just("bind"), st.sampled_from(["127.0.0.1", "::1"])),
        st.tuples(st.just("bidirectional"), st.booleans()),
        st.tuples(st.just("firmware"), st.sampled_from(["", "sihp1018.dl"]) | text),
        st.tuples(st.just("mdns"), st.booleans()),
    )
    keys = st.sampled_from(["enabled", "name", "port", "bind", "bidirectional", "firmware",
                            "mdns", "device", "usb_id", "section"]) | st.text(max_size=6)
    return st.lists(plausible | st.tuples(keys, json_values(ports)), max_size=4).map(dict)


@WEB_FUZZ
@given(data=st.data())
def test_any_printer_edit_is_refused_per_field_or_applied_soundly(web, data) -> None:
    settle_printers(web)
    section = data.draw(st.sampled_from(["a", "b", "nosuch", "a%00", "%2e%2e", "A"]))
    form = data.draw(printer_forms(web.ports))
    encoded = json.dumps(form, allow_nan=True)
    reply = web.client_.post(f"/api/printers/{section}", raw=encoded.encode(),
                             headers={"Content-Type": "application/json"})
    assert reply.status in (200, 400, 404), (reply.status, reply.body, form)
    assert "error" in reply.json or "printer" in reply.json
    if reply.status == 400 and "fields" in reply.json:
        assert set(reply.json["fields"]) <= set(form) | {"section"}
    check_still_sound(web)


settings_keys = st.sampled_from(["autoadd", "base_port", "queue_limit", "idle_timeout",
                                 "drain_grace", "mdns", "log_level", "firmware_dir",
                                 "password_hash", "web_port"]) | st.text(max_size=6)


@WEB_FUZZ
@given(form=st.dictionaries(settings_keys, st.one_of(
    control_text(), st.booleans(), st.none(), st.integers(-5, 2000),
    st.sampled_from(["1e3", "nan", "-0", "0.5", "debug", "info", "/tmp", "86401"]),
    st.floats(allow_nan=True, allow_infinity=True)), max_size=4))
def test_any_settings_edit_is_refused_per_field_or_applied_soundly(web, form) -> None:
    if "web_port" in form:
        form["web_port"] = "not a port"  # never move the page under the test's feet
    if "mdns" in form:
        form["mdns"] = False  # announcing would reach beyond loopback
    if isinstance(form.get("log_level"), str) and form["log_level"].strip().lower() in (
            "warning", "error"):
        form["log_level"] = "info"  # the test reads the log
    reply = web.client_.post("/api/settings", raw=json.dumps(form, allow_nan=True).encode(),
                             headers={"Content-Type": "application/json"})
    assert reply.status in (200, 400), (reply.status, reply.body, form)
    if reply.status == 200:
        applied = reply.json["settings"]
        for key, value in form.items():
            if key in ("queue_limit", "idle_timeout", "drain_grace", "base_port") and (
                    isinstance(value, str | int) and not isinstance(value, bool)):
                assert float(applied[key]) == float(str(value).strip()), (key, value, applied)
    check_still_sound(web)


@WEB_FUZZ
@given(body=st.binary(max_size=64) | control_text(40).map(str.encode),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", "multipart/form-data; boundary=x", ""]))
def test_any_request_body_is_answered_without_an_internal_error(web, body, content_type) -> None:
    settle_printers(web)
    for path in ("/api/printers/a", "/api/settings"):
        reply = web.client_.post(path, raw=body, headers={"Content-Type": content_type})
        assert reply.status in (200, 400, 415), (path, reply.status, reply.body)
    check_still_sound(web)


@WEB_FUZZ
@given(name=st.text(max_size=40) | st.sampled_from(["..", "%2e%2e", "a%2fb", "%00", ".x"]))
def test_any_firmware_name_in_the_url_is_stored_inside_firmware_dir_or_refused(web, name):
    firmware_dir = web.workdir / "firmware"
    listing = web.client_.get("/api/firmware")
    assert listing.json["directory"] == str(firmware_dir)  # never upload anywhere else
    before = {p for p in web.workdir.rglob("*") if p.is_file()}
    quoted = re.sub(r"[^A-Za-z0-9._~-]", lambda m: "".join(f"%{b:02X}" for b in
                                                          m[0].encode()), name)
    reply = web.client_.request("PUT", f"/api/firmware/{quoted}", raw=b"blob",
                                headers={"Content-Type": "application/octet-stream"})
    assert reply.status in (201, 400, 404, 405), (reply.status, reply.body)
    new = {p for p in web.workdir.rglob("*") if p.is_file()} - before
    new = {p for p in new if p.suffix != ".prn" and p.name != "daemon.log"}
    if reply.status == 201:
        assert new <= {firmware_dir / reply.json["file"]["name"]}
    else:
        assert not new


# --- an unusable firmware_dir -----------------------------------------------------------------


@pytest.fixture
def web_with_bad_firmware_dir(tmp_path: Path):
    (tmp_path / "not-a-directory").write_text("a file where the directory should be\n")
    printer, spool, port = spool_printer(tmp_path, "v")
    running = start_web_daemon(tmp_path, printer,
                               firmware_dir=str(tmp_path / "not-a-directory"))
    wait_for(lambda: port_accepts(port))
    running.spool, running.printer_port = spool, port
    yield running
    running.daemon.stop()


def test_an_unusable_firmware_dir_never_stops_printing(web_with_bad_firmware_dir):
    web = web_with_bad_firmware_dir
    client = web.logged_in()
    reply = client.request("PUT", "/api/firmware/sihp1018.dl", raw=b"blob",
                           headers={"Content-Type": "application/octet-stream"})
    assert reply.status >= 400 and "error" in reply.json
    web.daemon.reload()  # SIGHUP also tells the USB layer to look for blobs again
    web.daemon.wait_log(r"SIGHUP")
    send_job(web.printer_port, b"printing regardless")
    web.daemon.wait_log(r"done: 19 bytes in")
    assert client.get("/").status == 200 and client.get("/firmware").status == 200
    assert (web.workdir / "not-a-directory").read_text().startswith("a file")


def test_an_unusable_firmware_dir_is_named_in_the_listing(web_with_bad_firmware_dir):
    web = web_with_bad_firmware_dir
    reply = web.logged_in().get("/api/firmware")
    assert "not-a-directory" in reply.body.decode() and "internal error" not in reply.body.decode()
    assert "Traceback" not in web.daemon.log()
