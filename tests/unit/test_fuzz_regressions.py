"""Inputs coverage-guided fuzzing (`make fuzz`, tests/fuzz/) found, kept as regression cases:
each one broke a parser's promise before its fix, and is checked with the same shared checks
(or the same in-process web app) the fuzzing uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from parser_properties import check_edit
from web_inprocess import InProcessWeb

from usbprintd.uci import SetOption


def test_an_option_added_after_a_backslash_that_ends_the_file_is_saved(tmp_path: Path) -> None:
    """The backslash used to join the appended line to the last one: the store refused a
    valid edit of a file libuci reads ('too many arguments')."""
    text = "config printer 'q'\n\toption plain \\"
    check_edit(tmp_path / "usbprintd", text, [SetOption("q", "device", '"')])


def test_an_anonymous_section_whose_type_holds_a_bracket_can_be_edited(tmp_path: Path) -> None:
    """Section types may hold '[' and ']' (printable ASCII, as in libuci); the store named
    such a section '@]ri[0]' but could not find it by that name."""
    check_edit(tmp_path / "usbprintd", "config ]ri#\0", [SetOption("@]ri[0]", "port", "9101")])


def test_an_option_on_a_line_with_a_valueless_option_can_be_edited(tmp_path: Path) -> None:
    """'option bind' without a value reads as nothing; rewriting its line for another edit
    raised IndexError, which no caller expects from the store."""
    text = "config printer 'r'; option port +; option bind\n"
    check_edit(tmp_path / "usbprintd", text, [SetOption("r", "port", "it's")])


@pytest.fixture
def web(tmp_path: Path) -> InProcessWeb:
    web = InProcessWeb(tmp_path)
    web.reset()
    return web


MULTIPART = "multipart/form-data; boundary=x"


@pytest.mark.parametrize(("content_type", "part_header"), [
    (MULTIPART, b"Cont\xcbnt-Disposition: form-data; name=\"port\""),  # not UTF-8
    (MULTIPART + "; charset=latin1", b"Content-Disposition: form-data; nam\0\0e=\"port\""),
    (MULTIPART + "; charset=no-such-charset", b"Content-Disposition: form-data; name=\"port\""),
])
@pytest.mark.parametrize("path", [b"/api/printers/a", b"/api/settings", b"/api/login"])
def test_a_multipart_form_with_unreadable_part_headers_is_a_400_not_an_internal_error(
    web: InProcessWeb, path: bytes, content_type: str, part_header: bytes
) -> None:
    body = b"--x\r\n" + part_header + b"\r\n\r\n9103\r\n--x--\r\n"
    reply = web.request("POST", path, body, content_type)
    assert reply.status == 400, reply.body
    assert reply.json() == {"error": "the form data cannot be read"}


@pytest.mark.parametrize("target", ["/log/log\0\0", "/log\r\nSet-Cookie: x=1", "/\t/evil.example",
                                    "/\n/evil.example"])
def test_a_login_goes_home_instead_of_to_a_target_with_control_characters(
    web: InProcessWeb, target: str
) -> None:
    """Such a target used to fail as a Location header (an internal error), and browsers drop
    tabs and line breaks from URLs, which made '/', TAB, '/host' an open redirect."""
    body = b"password=nope&next=" + target.encode()
    reply = web.request("POST", b"/api/login", body, "application/x-www-form-urlencoded")
    assert reply.status == 303 and reply.headers["Location"] == "/"
