"""Request bodies judged by their headers: a Content-Length that is not plain ASCII digits is a
clear 400, never an exception in the request thread."""

from __future__ import annotations

import json

import pytest

from usbprintd.web.limits import MAX_BODY_BYTES, body_refusal, content_length, with_body_limits
from usbprintd.web.server import _declared_length


@pytest.mark.parametrize(("header", "length"), [
    ("", 0), ("0", 0), ("42", 42), (" 17 ", 17),
    ("\u00b2", None), ("\u0661\u0662", None), ("-1", None), ("1e3", None), ("0x10", None),
])
def test_content_length_is_ascii_digits_or_nothing(header, length):
    environ = {"CONTENT_LENGTH": header} if header else {}
    assert content_length(environ) == length
    assert _declared_length(environ) == length


@pytest.mark.parametrize("header", ["\u00b2", "\u00b9", "\u0661"])
def test_a_number_in_other_scripts_gets_a_400_before_the_app_runs(header):
    reached = []

    def app(environ, start_response):
        reached.append(environ)
        start_response("200 OK", [])
        return [b""]

    answer = {}
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/login", "CONTENT_LENGTH": header}
    body = b"".join(with_body_limits(app)(environ, lambda status, headers: answer.update(
        status=status, headers=dict(headers))))
    assert answer["status"].startswith("400") and not reached
    assert "not a number" in json.loads(body)["error"]


def test_bodies_within_the_limit_pass_and_larger_ones_are_refused():
    post = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/login"}
    assert body_refusal({**post, "CONTENT_LENGTH": str(MAX_BODY_BYTES)}) is None
    assert body_refusal({**post, "CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)})[0] == 413
