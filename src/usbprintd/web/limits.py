"""Request bodies are judged by their headers before anything reads them.

bottle copies a whole multipart or chunked body into a temporary file (RAM, on OpenWrt's /tmp)
before its own size limit applies, so the limit has to sit in front of bottle: a body without a
Content-Length is refused (411), and one whose Content-Length is over the limit of its route is
refused (413) unread. The server then drops what the client still sends (see `server.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from usbprintd.web.firmware import MAX_FIRMWARE_BYTES

MAX_BODY_BYTES = 100 * 1024  # forms and JSON; also bottle's MEMFILE_MAX, so they stay in RAM
FIRMWARE_UPLOAD_PREFIX = "/api/firmware/"  # PUT streams the blob to its file (firmware.py)


def body_limit(method: str, path: str) -> int:
    """The largest request body the route takes, in bytes."""
    if method == "PUT" and path.startswith(FIRMWARE_UPLOAD_PREFIX):
        return MAX_FIRMWARE_BYTES
    return MAX_BODY_BYTES


def content_length(environ: dict[str, Any]) -> int | None:
    """The Content-Length header as a number: 0 without one, None when it is not a number
    (ASCII digits only: '²' passes str.isdigit() but not int())."""
    text = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not text:
        return 0
    return int(text) if text.isascii() and text.isdigit() else None


def body_refusal(environ: dict[str, Any]) -> tuple[int, str] | None:
    """Why the request's body is refused (status, message), or None if it may be read."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").strip():
        return 411, "send the body with a Content-Length (chunked bodies are not accepted)"
    length = content_length(environ)
    if length is None:
        return 400, "the Content-Length header is not a number"
    limit = body_limit(str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", "")))
    if length > limit:
        return 413, f"the request body may have at most {limit} bytes here"
    return None


def with_body_limits(app: Callable[..., Any]) -> Callable[..., Any]:
    """WSGI middleware: refuse a body by its headers; only bodies within limits reach `app`."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = body_refusal(environ)
        if refusal is None:
            return app(environ, start_response)  # type: ignore[no-any-return]
        status, message = refusal
        body = json.dumps({"error": message}, separators=(",", ":")).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))])
        return [body]

    return wsgi
