"""Firmware upload, listing and deletion through the web API of the running daemon."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from web_helpers import start_web_daemon

MAX_BYTES = 4 * 1024 * 1024


@pytest.fixture
def web(tmp_path: Path):
    running = start_web_daemon(tmp_path)
    yield running
    running.daemon.stop()


def firmware_dir(web) -> Path:
    return web.workdir / "firmware"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def upload(client, name: str, data: bytes, **kwargs):
    return client.request("PUT", f"/api/firmware/{name}", raw=data,
                          headers={"Content-Type": "application/octet-stream"}, **kwargs)


def test_upload_stores_the_exact_blob_and_lists_it(web):
    client = web.logged_in()
    blob = os.urandom(200_000)
    reply = upload(client, "sihp1018.dl", blob)
    assert reply.status == 201
    assert reply.json["file"]["name"] == "sihp1018.dl"
    assert reply.json["file"]["size"] == len(blob)
    assert (firmware_dir(web) / "sihp1018.dl").read_bytes() == blob
    assert files_in(firmware_dir(web)) == ["sihp1018.dl"]  # no temporary file left behind
    listing = client.get("/api/firmware").json
    assert [f["name"] for f in listing["files"]] == ["sihp1018.dl"]
    assert listing["max_bytes"] == MAX_BYTES
    models = {m["usb_id"]: m for m in listing["models"]}
    assert models["03f0:4117"]["file"] == "sihp1018.dl"
    assert models["03f0:4117"]["present"] is True
    assert models["03f0:2b17"]["present"] is False
    web.daemon.wait_log(r"uploaded firmware sihp1018\.dl \(200000 bytes\)")


def test_replacing_a_blob_is_atomic(web):
    client = web.logged_in()
    assert upload(client, "sihp1020.dl", b"old" * 1000).status == 201
    assert upload(client, "sihp1020.dl", b"new" * 2000).status == 201
    assert (firmware_dir(web) / "sihp1020.dl").read_bytes() == b"new" * 2000
    assert files_in(firmware_dir(web)) == ["sihp1020.dl"]


def test_a_blob_over_the_limit_is_refused_with_413_and_not_stored(web):
    client = web.logged_in()
    reply = upload(client, "huge.dl", b"\0" * (MAX_BYTES + 1))
    assert reply.status == 413
    assert "at most" in reply.json["error"]
    assert files_in(firmware_dir(web)) == []
    assert upload(client, "exact.dl", b"\1" * MAX_BYTES).status == 201


def test_an_upload_onto_a_directory_of_that_name_is_refused_with_409(web):
    client = web.logged_in()
    (firmware_dir(web) / "kept.dl").mkdir(parents=True)
    (firmware_dir(web) / "kept.dl" / "inside").write_bytes(b"untouched")
    reply = upload(client, "kept.dl", b"blob" * 1000)
    assert reply.status == 409
    assert "is a directory" in reply.json["error"]
    assert (firmware_dir(web) / "kept.dl" / "inside").read_bytes() == b"untouched"
    assert files_in(firmware_dir(web)) == ["kept.dl"]
    assert upload(client, "next.dl", b"blob").status == 201  # the page keeps serving


def test_upload_without_a_length_is_refused(web):
    client = web.logged_in()
    with socket.create_connection(("127.0.0.1", web.web_port), timeout=10) as sock:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        sock.sendall((f"PUT /api/firmware/chunked.dl HTTP/1.1\r\nHost: 127.0.0.1:{web.web_port}"
                      f"\r\nCookie: {cookie}\r\nX-CSRF-Token: {client.csrf}\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode())
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.0 411")
    assert files_in(firmware_dir(web)) == []


@pytest.mark.parametrize("name, stored", [
    ("..", None),
    ("%2E%2E", None),
    ("...", None),
    (".hidden.dl", "hidden.dl"),
    ("my%20firmware%20(copy).dl", "my_firmware_copy_.dl"),
    ("..%5C..%5Cwindows.dl", "windows.dl"),
])
def test_file_names_are_reduced_to_plain_names_inside_the_directory(web, name, stored):
    client = web.logged_in()
    reply = upload(client, name, b"blob")
    if stored is None:
        assert reply.status == 400
        assert files_in(firmware_dir(web)) == []
    else:
        assert reply.status == 201
        assert reply.json["file"]["name"] == stored
        assert files_in(firmware_dir(web)) == [stored]
    assert set(files_in(web.workdir)) <= {"daemon.log", "firmware", "usbprintd.conf"}


@pytest.mark.parametrize("path", [
    "/api/firmware/..%2F..%2Fescaped.dl",
    "/api/firmware/../../escaped.dl",
    "/api/firmware/sub/escaped.dl",
])
def test_path_escapes_never_reach_the_filesystem(web, path):
    client = web.logged_in()
    reply = client.request("PUT", path, raw=b"evil")
    assert reply.status in (400, 404)
    found = [p for p in web.workdir.rglob("escaped*")]
    assert found == []
    assert not Path("/tmp/escaped.dl").exists()


def test_delete_removes_a_blob_and_unknown_names_are_404(web):
    client = web.logged_in()
    assert upload(client, "sihp1000.dl", b"blob").status == 201
    assert client.request("DELETE", "/api/firmware/sihp1000.dl").status == 204
    assert files_in(firmware_dir(web)) == []
    assert client.request("DELETE", "/api/firmware/sihp1000.dl").status == 404
    assert client.request("DELETE", "/api/firmware/..").status == 400


def test_symlinks_in_the_directory_are_neither_listed_nor_deleted(web):
    client = web.logged_in()
    outside = web.workdir / "outside.dl"
    outside.write_bytes(b"not firmware")
    firmware_dir(web).mkdir(exist_ok=True)
    (firmware_dir(web) / "link.dl").symlink_to(outside)
    assert client.get("/api/firmware").json["files"] == []
    assert client.request("DELETE", "/api/firmware/link.dl").status == 404
    assert outside.read_bytes() == b"not firmware"


def test_upload_needs_login_and_csrf(web):
    anonymous = web.client()
    assert upload(anonymous, "sihp1018.dl", b"blob").status == 401
    client = web.logged_in()
    assert upload(client, "sihp1018.dl", b"blob", csrf=False).status == 403
    assert files_in(firmware_dir(web)) == []
