"""Validation of the UCI schema: clear messages, and a bad value disables only what it touches."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import pytest

from usbprintd.appsocket import open_listeners
from usbprintd.config import (
    Config,
    InvalidValue,
    PrinterSettings,
    binds_overlap,
    next_free_port,
    parse_config,
    parse_port,
    printer_changes,
    section_name_for,
    validate_printer_form,
    web_port_errors,
)
from usbprintd.uci import SetOption, UciSection


def printer(name: str, **options: str) -> UciSection:
    return UciSection("printer", name, dict(options))


@pytest.mark.parametrize(("text", "port"), [("0", 9100), ("9", 9109), ("9100", 9100),
                                             ("631", 631), ("65535", 65535)])
def test_port_digits_mean_9100_plus_n_and_full_ports_pass(text, port):
    assert parse_port(text) == port


@pytest.mark.parametrize("text", ["-1", "65536", "abc", "", "91 00"])
def test_bad_ports_are_rejected_with_a_message(text):
    with pytest.raises(InvalidValue):
        parse_port(text)


def test_bad_value_marks_only_that_printer_invalid():
    config = parse_config([printer("good", port="9100"), printer("bad", port="99999")])
    assert config.printer("good").valid
    bad = config.printer("bad")
    assert not bad.valid and "out of range" in bad.problems[0]
    assert [str(i) for i in config.issues] == ["bad.port: port 99999 is out of range (0-65535)"]


def test_bad_global_value_falls_back_to_default_and_is_reported():
    config = parse_config([UciSection("usbprintd", "main", {"queue_limit": "lots"})])
    assert config.settings.queue_limit == 8
    assert "queue_limit" in str(config.issues[0])


def test_duplicate_port_and_bind_pair_keeps_the_first_printer():
    config = parse_config([
        printer("first", port="9100"),
        printer("second", port="9100", bind="127.0.0.1"),
        printer("third", port="9100", enabled="0"),
        printer("fourth", port="9101", bind="127.0.0.1"),
        printer("fifth", port="9101", bind="127.0.0.2"),
    ])
    assert config.printer("first").valid
    assert "already used by 'first'" in config.printer("second").problems[0]
    assert config.printer("third").valid  # disabled printers do not hold a port
    assert config.printer("fourth").valid and config.printer("fifth").valid


def test_unknown_sections_and_options_are_warnings_not_errors():
    config = parse_config([UciSection("spooler", "x", {}), printer("p", colour="red")])
    assert {i.severity for i in config.issues} == {"warning"}
    assert config.printer("p").valid


def test_bad_bind_address_and_usb_id_are_explained():
    config = parse_config([printer("p", bind="not-an-ip", usb_id="03f0-4117")])
    problems = " ".join(config.printer("p").problems)
    assert "not an IP address" in problems and "vvvv:pppp" in problems


def test_auth_none_is_refused_unless_the_page_listens_on_loopback():
    config = parse_config([UciSection("usbprintd", "main", {"auth": "none",
                                                           "web_listen": "0.0.0.0"})])
    assert config.settings.auth == "password"
    loopback = parse_config([UciSection("usbprintd", "main", {"auth": "none",
                                                             "web_listen": "127.0.0.1"})])
    assert loopback.settings.auth == "none"


def test_booleans_are_written_explicitly():
    changes = printer_changes(PrinterSettings("p", enabled=False, mdns=True),
                              only=["enabled", "mdns"])
    assert set(changes) == {SetOption("p", "enabled", "0"), SetOption("p", "mdns", "1")}


def test_printer_form_reports_port_clash_and_bad_values_per_field():
    config = parse_config([printer("a", port="9100"), printer("b", port="9101")])
    _, errors = validate_printer_form(config, "b", {"port": "9100", "name": "B"})
    assert errors == {"port": "port 9100 is already used by 'a'"}
    _, errors = validate_printer_form(config, "b", {"bind": "1.2.3", "enabled": "maybe"})
    assert set(errors) == {"bind", "enabled"}


def test_new_sections_get_readable_unique_names_and_the_next_free_port():
    assert section_name_for("HP LaserJet 1018", []) == "hp_laserjet_1018"
    assert section_name_for("HP LaserJet 1018", ["hp_laserjet_1018"]) == "hp_laserjet_1018_2"
    assert section_name_for("3D printer", []) == "printer_3d_printer"
    config = Config(printers=(PrinterSettings("a", port=9100), PrinterSettings("b", port=9101)))
    assert next_free_port(config) == 9102


# --- which listen addresses clash on one port ----------------------------------------------------

LISTEN_PAIRS = [
    ("", "127.0.0.1", True), ("", "::1", True), ("::", "0.0.0.0", True), ("::", "::1", True),
    ("::", "127.0.0.1", True), ("0.0.0.0", "127.0.0.1", True), ("0.0.0.0", "0.0.0.0", True),
    ("0.0.0.0", "::1", False), ("127.0.0.1", "127.0.0.2", False), ("127.0.0.1", "::1", False),
    ("::ffff:127.0.0.1", "127.0.0.1", True), ("0.0.0.0", "::ffff:127.0.0.2", True),
    ("::1", "::1", True),
]


@pytest.mark.parametrize(("first", "second", "clash"), LISTEN_PAIRS)
def test_wildcard_binds_clash_with_the_addresses_they_cover(first, second, clash):
    assert binds_overlap(first, second) is clash
    assert binds_overlap(second, first) is clash


KERNEL_CLASHES_FLAG = "--kernel-clashes"  # run as a script: the child in its own namespace


def kernel_clash(first: str, second: str) -> bool:
    """Whether the kernel refuses listeners on `second` next to listeners on `first`, both
    opened the way the print server opens them, on one port that is free here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    held = open_listeners(first, port)
    try:
        try:
            second_listeners = open_listeners(second, port)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            return True
        for sock in second_listeners:
            sock.close()
        return False
    finally:
        for sock in held:
            sock.close()


def network_namespace() -> str:
    return os.readlink("/proc/self/ns/net")


@pytest.fixture(scope="module")
def kernel_verdicts() -> dict[tuple[str, str], bool]:
    """`kernel_clash` of every listed pair, asked in a child process in a network namespace of
    its own (loopback only): the wildcard listeners never appear on this machine's real
    interfaces, and nothing else there can hold the ports."""
    unshare = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    pairs = [(first, second) for first, second, _ in LISTEN_PAIRS]
    child = subprocess.run([*unshare, "--", sys.executable, __file__, KERNEL_CLASHES_FLAG,
                            network_namespace()],
                           input=json.dumps(pairs), capture_output=True, text=True, timeout=60)
    if child.returncode != 0 and child.stderr.startswith("unshare:"):
        pytest.skip(f"cannot make a network namespace: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    return dict(zip(pairs, json.loads(child.stdout), strict=True))


@pytest.mark.parametrize(("first", "second", "clash"), LISTEN_PAIRS)
def test_the_kernel_refuses_exactly_the_pairs_the_config_check_calls_clashes(
    kernel_verdicts, first, second, clash
):
    """Ground truth: the real kernel, with both listeners opened as the print server opens
    them."""
    if ":" in first + second and not socket.has_ipv6:
        pytest.skip("no IPv6")
    assert kernel_verdicts[(first, second)] is clash


def test_a_printer_on_the_web_pages_port_and_address_is_refused_with_the_reason():
    web = UciSection("usbprintd", "main", {"web_port": "8631", "web_listen": "0.0.0.0"})
    config = parse_config([web, printer("clash", port="8631", bind="127.0.0.1"),
                           printer("elsewhere", port="8631", bind="::1"),
                           printer("fine", port="9100")])
    assert not config.printer("clash").valid
    assert "port 8631 is the web page's (web_port)" in str(config.issues)
    assert config.printer("elsewhere").valid and config.printer("fine").valid


def test_forms_refuse_putting_a_printer_and_the_web_page_on_one_port():
    config = parse_config([UciSection("usbprintd", "main", {"web_port": "8631"}),
                           UciSection("printer", "office", {"port": "9100", "name": "Office"})])
    _, errors = validate_printer_form(config, "office", {"port": "8631"})
    assert errors == {"port": "port 8631 is the web page's (web_port)"}
    assert web_port_errors(config, {"web_port": 9100}) == {
        "web_port": "port 9100 is used by 'Office'"}
    assert web_port_errors(config, {"web_port": 9100, "web_listen": "::1"}) == {
        "web_port": "port 9100 is used by 'Office'"}
    assert web_port_errors(config, {"web_port": 0}) == {}


def test_the_next_free_port_skips_the_web_pages():
    config = parse_config([UciSection("usbprintd", "main", {"web_port": "9100"})])
    assert next_free_port(config) == 9101


if __name__ == "__main__" and sys.argv[1:2] == [KERNEL_CLASHES_FLAG]:
    # In the fresh namespace: bring loopback up, then judge the pairs read from stdin.
    if network_namespace() == sys.argv[2]:
        sys.exit("not in a network namespace of its own: nothing is opened")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps([kernel_clash(first, second) for first, second in json.load(sys.stdin)]))
