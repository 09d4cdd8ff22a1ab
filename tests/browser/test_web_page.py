"""The web page in a real browser against the running daemon with a virtual printer."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest
from daemon_process import free_port, port_accepts, send_with_nc, wait_for
from playwright.sync_api import expect
from web_helpers import PASSWORD, spool_printer, start_web_daemon

pytestmark = pytest.mark.browser


@pytest.fixture
def web(tmp_path: Path):
    printer, spool, port = spool_printer(tmp_path, "virtual")
    running = start_web_daemon(tmp_path, printer)
    wait_for(lambda: port_accepts(port))
    running.spool, running.printer_port = spool, port
    running.url = f"http://127.0.0.1:{running.web_port}"
    yield running
    running.daemon.stop()


def log_in(page, web) -> None:
    page.goto(web.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(web.url + "/")


def printer_row(page):
    return page.locator("#printers tr[data-section=virtual]")


def script_errors(page) -> list[str]:
    """Script exceptions and CSP violations (HTTP error statuses the page handles are fine)."""
    return [p for p in page.problems if "Failed to load resource" not in p]


def spooled(spool: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(spool.iterdir()) if p.suffix == ".prn"]


def test_login_shows_the_printer_with_its_state(page, web, screenshot):
    page.goto(web.url + "/login")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("wrong")
    screenshot(page, "login")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(web.url + "/")
    row = printer_row(page)
    expect(row).to_contain_text("virtual")
    expect(row.locator(".label")).to_have_text("serving")
    expect(row).to_contain_text(str(web.printer_port))
    expect(page.locator("header .brand")).to_have_text(socket.gethostname())
    assert script_errors(page) == []


def test_disable_closes_the_port_and_enable_opens_it(page, web, screenshot):
    log_in(page, web)
    printer_row(page).get_by_role("link", name="Edit").click()
    expect(page.locator("#printer-title")).to_have_text("virtual")
    expect(page.locator("[data-show=state] .label")).to_have_text("serving")
    screenshot(page, "printer")
    page.uncheck("#field-enabled")
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("#notice")).to_have_text("Saved and applied.")
    wait_for(lambda: not port_accepts(web.printer_port))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web.printer_port), timeout=2).close()
    expect(page.locator("[data-show=state] .label")).to_have_text("disabled")
    page.check("#field-enabled")
    page.get_by_role("button", name="Save & Apply").click()
    wait_for(lambda: port_accepts(web.printer_port))
    expect(page.locator("[data-show=state] .label")).to_have_text("serving")
    assert script_errors(page) == []


def test_port_change_and_a_job_on_the_new_port(page, web):
    log_in(page, web)
    page.goto(f"{web.url}/printers/virtual")
    page.fill("#field-port", "not a port")
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("[data-error-for=port]")).to_contain_text("not a whole number")
    expect(page.locator("#row-port")).to_have_class(re.compile("invalid"))
    assert port_accepts(web.printer_port)
    page.get_by_role("button", name="Reset").click()
    expect(page.locator("#field-port")).to_have_value(str(web.printer_port))
    new_port = free_port()
    page.fill("#field-port", str(new_port))
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("#notice")).to_have_text("Saved and applied.")
    expect(page.locator("[data-error-for=port]")).to_be_hidden()
    wait_for(lambda: port_accepts(new_port))
    assert not port_accepts(web.printer_port)
    send_with_nc(new_port, b"printed on the new port\n")
    wait_for(lambda: spooled(web.spool) == [b"printed on the new port\n"])
    expect(page.locator("#history tbody tr").first).to_contain_text("done")
    expect(page.locator("[data-show=listening]")).to_contain_text(f"127.0.0.1:{new_port}")


def test_the_web_pages_own_port_is_refused_inline(page, web):
    log_in(page, web)
    page.goto(f"{web.url}/printers/virtual")
    page.fill("#field-port", str(web.web_port))
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("[data-error-for=port]")).to_contain_text(
        f"port {web.web_port} is the web page's")
    expect(page.locator("#row-port")).to_have_class(re.compile("invalid"))
    expect(page.locator("#notice")).to_contain_text("Not saved")
    assert f"option port '{web.printer_port}'" in web.config
    assert port_accepts(web.printer_port)
    assert script_errors(page) == []


def test_a_running_job_appears_in_the_history_while_it_prints(page, web, screenshot):
    log_in(page, web)
    with socket.create_connection(("127.0.0.1", web.printer_port)) as client:
        for piece in range(3):
            client.sendall(b"page %d " % piece + b"x" * 20_000)
            time.sleep(0.3)
        running = page.locator("#history tr[data-outcome=printing]")
        expect(running).to_have_count(1)
        expect(running).to_contain_text("127.0.0.1")
        expect(printer_row(page)).to_contain_text("from 127.0.0.1")
        screenshot(page, "status-printing")
        client.sendall(b"the end")
        client.shutdown(socket.SHUT_WR)
        client.recv(1)
    expect(page.locator("#history tr[data-outcome=done]")).to_have_count(1)
    expect(page.locator("#history tr[data-outcome=printing]")).to_have_count(0)
    expect(printer_row(page)).to_contain_text("1 done")
    screenshot(page, "status")
    assert script_errors(page) == []


def test_firmware_upload_lists_the_file(page, web, screenshot, tmp_path):
    blob = tmp_path / "sihp1018.dl"
    blob.write_bytes(os.urandom(150_000))
    log_in(page, web)
    page.click("header >> text=Firmware")
    expect(page.locator("#firmware-files")).to_contain_text("No firmware files uploaded yet.")
    page.set_input_files("#firmware-file", str(blob))
    page.click("#firmware-upload button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("sihp1018.dl uploaded")
    expect(page.locator("#firmware-files tr[data-file='sihp1018.dl']")).to_be_visible()
    stored = web.workdir / "firmware" / "sihp1018.dl"
    assert stored.read_bytes() == blob.read_bytes()
    model = page.locator("#firmware-models tr", has_text="HP LaserJet 1018")
    expect(model.locator(".label")).to_have_text("present")
    screenshot(page, "firmware")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#firmware-files tr[data-file='sihp1018.dl'] button").click()
    expect(page.locator("#firmware-files")).to_contain_text("No firmware files uploaded yet.")
    assert not stored.exists()
    assert script_errors(page) == []


def test_settings_log_and_logout(page, web, screenshot):
    log_in(page, web)
    page.click("header >> text=Settings")
    page.fill("#field-queue_limit", "lots")
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("[data-error-for=queue_limit]")).to_contain_text("whole number")
    page.fill("#field-queue_limit", "3")
    page.select_option("#field-log_level", "debug")
    page.get_by_role("button", name="Save & Apply").click()
    expect(page.locator("#notice")).to_have_text("Saved and applied.")
    assert "option queue_limit '3'" in web.config
    screenshot(page, "settings")
    page.click("header >> text=Log")
    expect(page.locator("#events")).to_contain_text("changed settings")
    screenshot(page, "log")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(web.url + "/settings")
    expect(page).to_have_url(re.compile(r"/login\?next=/settings$"))
    assert script_errors(page) == []


def test_every_known_printer_is_listed_and_an_absent_one_can_be_forgotten(page, tmp_path,
                                                                          screenshot):
    from daemon_process import printer_section

    serving, _, _ = spool_printer(tmp_path, "office")
    resting, _, resting_port = spool_printer(tmp_path, "basement", enabled="0")
    unplugged = tmp_path / "unplugged"
    unplugged.mkdir()
    absent = printer_section("attic", unplugged, free_port())
    web = start_web_daemon(tmp_path, serving + resting + absent)
    web.url = f"http://127.0.0.1:{web.web_port}"
    try:
        unplugged.rmdir()
        log_in(page, web)
        states = {"office": "serving", "basement": "disabled", "attic": "absent"}
        for section, state in states.items():
            row = page.locator(f"#printers tr[data-section={section}]")
            expect(row.locator(".label")).to_have_text(state)
        assert not port_accepts(resting_port)
        screenshot(page, "status-states")
        page.locator("#printers tr[data-section=attic]").get_by_role("link", name="Edit").click()
        expect(page.locator("#forget-section")).to_be_visible()
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Forget this printer").click()
        expect(page).to_have_url(web.url + "/")
        expect(page.locator("#printers tr[data-section=office]")).to_be_visible()
        expect(page.locator("#printers tr[data-section=attic]")).to_have_count(0)
        assert "attic" not in web.config
        assert script_errors(page) == []
    finally:
        web.daemon.stop()
