"""Request bodies are refused by their headers, before the daemon reads them.

/tmp is RAM on OpenWrt, and bottle copies a whole multipart or chunked body into a temporary
file before anything looks at its size. Each test here sends the headers of a large body and
only the first bytes of it, then waits for the answer: only a server that judged the request
without reading its body can answer at that point. The daemon's TMPDIR is watched as well.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from web_helpers import WebClient, start_web_daemon

HUGE = 50 * 1024 * 1024
FIRST_BYTES = 200 * 1024  # more than bottle keeps in memory before it spills to a file
ANSWER_TIMEOUT = 5.0
MULTIPART = "multipart/form-data; boundary=x"


@pytest.fixture
def web(tmp_path: Path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    running = start_web_daemon(tmp_path, extra_env={"TMPDIR": str(scratch)})
    running.scratch = scratch
    yield running
    running.daemon.stop()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP response (the body as long as Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def send_start_of(web, method: str, path: str, headers: dict[str, str],
                  first_bytes: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send the request head and the first bytes of the body, then wait for the answer
    without sending the rest."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{web.web_port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", web.web_port), timeout=ANSWER_TIMEOUT) as sock:
        sock.sendall(head.encode() + first_bytes)
        try:
            return read_answer(sock)
        except TimeoutError:
            raise AssertionError(f"no answer to {method} {path} within {ANSWER_TIMEOUT} s: "
                                 "the server is waiting for the rest of the body") from None


def session_headers(client: WebClient) -> dict[str, str]:
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return {"Cookie": cookie, "X-CSRF-Token": client.csrf}


def assert_refused(answer: tuple[int, dict[str, str], bytes], status: int, words: str) -> None:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert words in json.loads(body)["error"]
    assert headers["x-frame-options"] == "DENY"  # an answer like every other


def test_a_huge_multipart_login_is_refused_before_it_is_read(web):
    answer = send_start_of(web, "POST", "/api/login",
                           {"Content-Type": MULTIPART, "Content-Length": str(HUGE)},
                           b"--x\r\n" + b"a" * FIRST_BYTES)
    assert_refused(answer, 413, "at most 102400 bytes")
    assert list(web.scratch.iterdir()) == []


def test_a_chunked_json_login_is_refused_with_411(web):
    chunk = b"{" + b" " * (FIRST_BYTES - 1)
    answer = send_start_of(web, "POST", "/api/login",
                           {"Content-Type": "application/json",
                            "Transfer-Encoding": "chunked"},
                           b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    assert_refused(answer, 411, "Content-Length")
    assert list(web.scratch.iterdir()) == []


@pytest.mark.parametrize("path", ["/api/settings", "/api/printers/anything", "/api/logout"])
def test_logged_in_changes_with_a_huge_multipart_body_are_refused_unread(web, path):
    client = web.logged_in()
    headers = {**session_headers(client), "Content-Type": MULTIPART,
               "Content-Length": str(HUGE)}
    answer = send_start_of(web, "POST", path, headers, b"--x\r\n" + b"a" * FIRST_BYTES)
    assert_refused(answer, 413, "at most")
    assert list(web.scratch.iterdir()) == []
    assert client.get("/api/session").status == 200  # the session is untouched


@pytest.mark.parametrize("path", ["/api/settings", "/api/firmware/sihp1018.dl"])
def test_logged_in_chunked_bodies_are_refused_with_411(web, path):
    client = web.logged_in()
    method = "PUT" if "firmware" in path else "POST"
    headers = {**session_headers(client), "Content-Type": "application/json",
               "Transfer-Encoding": "chunked"}
    answer = send_start_of(web, method, path, headers, b"10000\r\n" + b" " * 1000)
    assert_refused(answer, 411, "Content-Length")
    assert not (web.workdir / "firmware" / "sihp1018.dl").exists()


def test_a_firmware_upload_over_its_own_limit_is_refused_unread(web):
    client = web.logged_in()
    headers = {**session_headers(client), "Content-Type": "application/octet-stream",
               "Content-Length": str(4 * 1024 * 1024 + 1)}
    answer = send_start_of(web, "PUT", "/api/firmware/sihp1018.dl", headers, b"\0" * 1024)
    assert_refused(answer, 413, "at most 4194304 bytes")
    assert not (web.workdir / "firmware").exists()


def test_a_firmware_upload_keeps_its_larger_limit(web):
    client = web.logged_in()
    blob = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    reply = client.request("PUT", "/api/firmware/sihp1018.dl", raw=blob,
                           headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 201
    assert (web.workdir / "firmware" / "sihp1018.dl").read_bytes() == blob


def test_a_malformed_content_length_is_a_400(web):
    answer = send_start_of(web, "POST", "/api/login",
                           {"Content-Type": "application/json", "Content-Length": "12abc"},
                           b"{}")
    assert_refused(answer, 400, "Content-Length")


def test_a_client_that_sends_a_refused_body_in_full_still_reads_the_answer(web):
    """After answering, the server drops what the client still sends (without keeping it),
    so a client that writes its whole body before reading sees the 413, not a reset."""
    reply = web.client().post("/api/login", raw=b"x" * (3 * 1024 * 1024),
                              headers={"Content-Type": MULTIPART})
    assert reply.status == 413
    assert "at most" in reply.json["error"]
    assert list(web.scratch.iterdir()) == []


def test_bodies_within_the_limit_are_still_read(web):
    client = web.client()
    form = client.post("/api/login", raw=b"password=correct+horse+battery&next=/log",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 303 and form.header("Location") == "/log"
    assert client.get("/api/session").status == 200



@dataclass
class SteppingClock:
    """Stands in for the server's clock: every reading is `step` seconds after the one before,
    so a time limit runs out after a known number of readings however busy the machine is
    (`step=0` is a clock that never moves)."""

    step: float
    readings: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        now = len(self.readings) * self.step
        self.readings.append(now)
        return now


@contextmanager
def refusing_server(monkeypatch, clock: SteppingClock, seconds: float,
                    max_bytes: int) -> Iterator[int]:
    """A web server that refuses every body by its headers and drops the rest of it with the
    given limits on `clock`; yields its port."""
    from usbprintd.web import server
    from usbprintd.web.limits import with_body_limits

    monkeypatch.setattr(server, "time", clock)
    monkeypatch.setattr(server, "DROP_MAX_SECONDS", seconds)
    monkeypatch.setattr(server, "DROP_MAX_BYTES", max_bytes)

    def never_called(environ, start_response):
        raise AssertionError("a refused body reached the application")

    web = server.WebServer(with_body_limits(never_called), "127.0.0.1", 0)
    web.start()
    try:
        yield web.port
    finally:
        web.stop()


CLIENT_SEND_BUFFER = 64 * 1024


def largest_receive_buffer() -> int:
    """The size TCP may grow the server's receive buffer to."""
    return int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])


def buffered_at_most(sock: socket.socket) -> int:
    """The most body bytes that can sit between the client's sendall and the server's reads:
    the client's send buffer and the server's receive buffer."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + largest_receive_buffer()


def send_until_cut_off(port: int, declared: int) -> tuple[int, int]:
    """Ask with a body of `declared` bytes, read the 413, then keep sending the body until the
    server resets the connection: (bytes sent, bytes the kernels may have buffered).

    Only a reset counts as being cut off: a server that stops reading without closing makes
    sendall time out, and that TimeoutError fails the test."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SEND_BUFFER)
        sock.settimeout(ANSWER_TIMEOUT)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % declared)
        assert read_answer(sock)[0] == 413
        sent, piece = 0, b"\0" * 65536
        try:
            while sent < declared:
                sock.sendall(piece[:declared - sent])
                sent += min(len(piece), declared - sent)
        except (ConnectionResetError, BrokenPipeError):  # the server stopped dropping, closed
            return sent, buffered_at_most(sock)
    raise AssertionError("the server took the whole refused body")


def test_dropping_a_refused_body_stops_when_its_time_is_up(monkeypatch):
    """With no byte limit short of the body, only the clock can end the drop: the server closes
    at its first reading at or past the deadline, not before."""
    clock = SteppingClock(step=1.0)
    with refusing_server(monkeypatch, clock, seconds=10.0, max_bytes=HUGE) as port:
        send_until_cut_off(port, HUGE)
    assert len(clock.readings) >= 2, clock.readings
    deadline = clock.readings[0] + 10.0
    assert clock.readings[-2] < deadline <= clock.readings[-1], clock.readings


def test_dropping_a_refused_body_stops_after_its_byte_limit(monkeypatch):
    """On a clock that never moves, only the byte limit can end the drop: the client is cut off
    after the limit plus what the socket buffers held, well short of its body."""
    max_bytes = 1024 * 1024
    declared = 2 * (max_bytes + 2 * CLIENT_SEND_BUFFER + largest_receive_buffer())
    clock = SteppingClock(step=0.0)
    with refusing_server(monkeypatch, clock, seconds=10.0, max_bytes=max_bytes) as port:
        sent, buffered = send_until_cut_off(port, declared)
    assert sent <= max_bytes + buffered
