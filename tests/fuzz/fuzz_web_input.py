"""Coverage-guided fuzzing of what browsers and scripts post to the web page: JSON objects and
HTML forms (url-encoded or multipart) for the printer, settings and login APIs.

An input is `<endpoint byte><content-type byte><body>` (the content-type byte's top bit
leaves out the CSRF header, as a plain HTML form does). The request goes through the real
WSGI app (bottle's body parsing, the page's field reading) into a real registry over the file
store. Whatever the body, the answer is a per-field refusal or a change the daemon reads back:
never an internal error, never a config file the daemon cannot load, never a valid printer made
invalid, never a write beside the config file, never a login redirect off the site. Bodies
that are JSON objects of text are also checked against the validators directly (the hypothesis
form properties). Seeds: what the page's script and plain forms send (app.js, the web API
tests)."""

from __future__ import annotations

import json

from harness import fuzz, instrumented, scratch_dir

with instrumented("bottle"):
    from parser_properties import (
        changed_entries,
        check_config,
        check_printer_form,
        check_settings_form,
        tree,
    )
    from web_inprocess import InProcessWeb

    from usbprintd.uci import FileStore

ENDPOINTS = ["/api/printers/a", "/api/printers/b", "/api/printers/nosuch", "/api/settings",
             "/api/login"]
CONTENT_TYPES = [
    "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    None, "text/plain", "application/json; charset=utf-8", "Application/JSON ",
    "application/json-rpc", "multipart/form-data; boundary=x; charset=latin1",
    "multipart/form-data; boundary=x; charset=no-such-charset", "multipart/form-data",
    "application/x-www-form-urlencoded; charset=utf-8",
]
WITHOUT_TOKEN = 0x80  # in the content-type byte: no X-CSRF-Token header (a plain form post)
ALLOWED = {"/api/settings": {200, 400, 413}, "/api/login": {200, 303, 400, 413}}
PRINTER_ANSWERS = {200, 400, 404, 413}
NO_TOKEN_ANSWERS = {403}  # the form field cannot hold this process's token

ROOT = scratch_dir() / "root"
WEB = InProcessWeb(ROOT)


def json_object(body: bytes) -> dict | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def check_validators(path: str, sent: dict | None) -> None:
    """A JSON object of text is what the page reads into a form: the validators' properties."""
    if sent is None or not all(isinstance(v, str) for v in sent.values()):
        return
    if path.startswith("/api/printers/"):
        check_printer_form(FileStore(WEB.config_path).load(), path.rsplit("/", 1)[1], sent)
    elif path == "/api/settings":
        check_settings_form(sent)


def check_answer(path: str, status: int, reply_body: bytes, headers: dict[str, str],
                 sent: dict | None, token: bool) -> None:
    allowed = ALLOWED.get(path, PRINTER_ANSWERS)
    if not token and path != "/api/login":
        allowed = NO_TOKEN_ANSWERS
    assert status in allowed, (status, reply_body)
    if status == 303:  # a plain login form: back to a page on this site only
        location = headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert "\\" not in location and location.isprintable(), location
        return
    answer = json.loads(reply_body)
    assert isinstance(answer, dict)
    if status >= 400:
        assert isinstance(answer.get("error"), str), answer
    if status == 400 and "fields" in answer and sent is not None:
        assert set(answer["fields"]) <= set(sent) | {"section"}, (answer, sent)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    path = ENDPOINTS[data[0] % len(ENDPOINTS)]
    content_type = CONTENT_TYPES[(data[1] & ~WITHOUT_TOKEN) % len(CONTENT_TYPES)]
    token = not data[1] & WITHOUT_TOKEN
    body = data[2:]
    WEB.reset()
    valid_before = {p.section for p in WEB.registry.config.printers if p.valid}
    before = tree(ROOT)
    is_json = (content_type or "").split(";")[0].strip().lower() == "application/json"
    sent = json_object(body) if is_json else None  # the fields, when the page reads JSON
    check_validators(path, sent)

    reply = WEB.request("POST", path.encode(), body, content_type, token)
    check_answer(path, reply.status, reply.body, reply.headers, sent, token)

    assert changed_entries(before, tree(ROOT)) <= {"etc/config/usbprintd"}
    config = check_config(FileStore(WEB.config_path).load())  # loads, and its invariants hold
    assert valid_before <= {p.section for p in config.printers if p.valid}
    assert WEB.registry.config == config  # what the daemon serves is what the file says


if __name__ == "__main__":
    fuzz(one_input)
