"""Coverage-guided fuzzing of uploaded firmware file names: whatever name a browser (or an
attacker) sends, the store writes and deletes only plain files directly inside firmware_dir.

Each input is a name: as text, checked against the store directly (save and delete, next to a
subdirectory, a symlink pointing outside and files that must not change), and as the raw bytes
of the request path `PUT`/`DELETE /api/firmware/<name>` through the web app, which may refuse
it or store exactly one file under its safe name. Seeds: the blob names the page knows, and
the hostile names of the hypothesis tests."""

from __future__ import annotations

from harness import fuzz, instrumented, reset_dir, scratch_dir

with instrumented():
    from parser_properties import (
        changed_entries,
        check_firmware_delete,
        check_firmware_save,
        check_safe_name,
        firmware_layout,
        tree,
    )
    from web_inprocess import InProcessWeb

ROOT = scratch_dir() / "root"
WEB = InProcessWeb(ROOT)
WEB.reset()  # firmware requests never change the configuration
BLOB = b"new blob"


def fresh_root() -> None:
    reset_dir(ROOT)
    firmware_layout(ROOT)
    WEB.write_config()


def check_upload_through_the_page(raw: bytes) -> None:
    fresh_root()
    before = tree(ROOT)
    reply = WEB.request("PUT", b"/api/firmware/" + raw, BLOB, "application/octet-stream")
    changed = changed_entries(before, tree(ROOT))
    name = raw.decode("utf-8", "ignore")  # how the app decodes the request path
    if reply.status == 409:  # a directory of that name is kept
        assert check_safe_name(name) == "sub", reply.body
    else:
        assert reply.status in (201, 400, 404), (reply.status, reply.body)
    if reply.status == 201:
        stored = reply.json()["file"]["name"]
        assert stored == check_safe_name(name)
        assert changed == {f"etc/firmware/{stored}"}, changed
        assert (WEB.firmware_dir / stored).read_bytes() == BLOB
    else:
        assert not changed, changed


def check_delete_through_the_page(raw: bytes) -> None:
    fresh_root()
    before = tree(ROOT)
    reply = WEB.request("DELETE", b"/api/firmware/" + raw)
    assert reply.status in (204, 400, 404), (reply.status, reply.body)
    changed = changed_entries(before, tree(ROOT))
    if reply.status == 204:
        assert changed == {f"etc/firmware/{check_safe_name(raw.decode('utf-8', 'ignore'))}"}
    else:
        assert not changed, changed


def one_input(data: bytes) -> None:
    name = data.decode("utf-8", "replace")
    check_safe_name(name)
    fresh_root()
    check_firmware_save(ROOT, name)
    fresh_root()
    check_firmware_delete(ROOT, name)
    check_upload_through_the_page(data)
    check_delete_through_the_page(data)


if __name__ == "__main__":
    fuzz(one_input)
