"""Property tests for uploaded firmware file names, with real files in a temporary directory:
whatever name a browser (or an attacker) sends, the store writes and deletes only plain files
directly inside firmware_dir, never anywhere else."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usbprintd.web.firmware import MAX_NAME_LENGTH, FirmwareError, FirmwareStore, safe_name

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FS_FUZZ = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

HOSTILE = [
    "../outside.bin", "..\\outside.bin", "/etc/passwd", "firmware/../../outside.bin", "..", ".",
    "...", ".hidden", "a/../../b", "C:\\Windows\\sihp1018.dl", "sihp1018.dl\0.txt", "nul\0",
    "%2e%2e%2foutside", "\u2025/outside", "\uff0e\uff0e/outside", "sub/", "sub", "link",
    "-rf", " sihp1018.dl ", "x" * 300, "sihp1018.dl/", "\n", "a\nb", "*", "?", "~",
]
names = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80),
                  st.lists(st.sampled_from(["..", ".", "sub", "link", "x.dl", ""]), max_size=5)
                  .map("/".join))


@FUZZ
@given(names)
def test_a_safe_name_is_one_plain_visible_file_name_or_refused(name: str) -> None:
    try:
        cleaned = safe_name(name)
    except FirmwareError as err:
        assert err.status == 400
        return
    assert re.fullmatch(r"[A-Za-z0-9._-]+", cleaned)
    assert not cleaned.startswith(".") and cleaned not in (".", "..")
    assert len(cleaned) <= MAX_NAME_LENGTH
    assert safe_name(cleaned) == cleaned  # stable: the listed name is the name to delete


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below `root`: file contents, or the target of a symlink."""
    result: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            key = str(path.relative_to(root))
            if path.is_symlink():
                result[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                result[key] = path.read_bytes()
    return result


def layout(root: Path) -> Path:
    """firmware_dir with a subdirectory and a symlink pointing outside, next to files that
    must never change."""
    firmware = root / "etc" / "firmware"
    (firmware / "sub").mkdir(parents=True)
    (root / "outside.bin").write_bytes(b"precious")
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0")
    (firmware / "link").symlink_to(root / "outside.bin")
    (firmware / "existing.dl").write_bytes(b"old blob")
    return firmware


@FS_FUZZ
@given(names)
def test_saving_under_any_name_writes_only_one_file_inside_firmware_dir(
    tmp_path_factory, name: str
) -> None:
    root = tmp_path_factory.mktemp("root")
    firmware = layout(root)
    before = tree(root)
    store = FirmwareStore(firmware)
    try:
        blob = store.save(name, io.BytesIO(b"new blob"), len(b"new blob"))
    except FirmwareError:
        assert tree(root) == before
        return
    except IsADirectoryError:
        assert safe_name(name) == "sub"  # an existing directory is not replaced
        assert tree(root) == before
        return
    after = tree(root)
    written = f"etc/firmware/{blob.name}"
    assert (firmware / blob.name).read_bytes() == b"new blob"
    assert not (firmware / blob.name).is_symlink()
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed == {written}, changed
    assert after["outside.bin"] == b"precious" and after["etc/passwd"] == b"root:x:0:0"


@FS_FUZZ
@given(names)
def test_deleting_under_any_name_removes_at_most_one_plain_file_inside_firmware_dir(
    tmp_path_factory, name: str
) -> None:
    root = tmp_path_factory.mktemp("root")
    firmware = layout(root)
    before = tree(root)
    try:
        FirmwareStore(firmware).delete(name)
    except FirmwareError as err:
        assert err.status in (400, 404)
        assert tree(root) == before
        return
    after = tree(root)
    assert set(before) - set(after) == {f"etc/firmware/{safe_name(name)}"}
    assert set(after) <= set(before) and after["outside.bin"] == b"precious"


@FUZZ
@given(st.lists(st.sampled_from(["sihp1018.dl", ".upload-x", "link", "sub", "b.dl"]),
                unique=True))
def test_listing_shows_only_plain_visible_files(tmp_path_factory, present: list[str]) -> None:
    firmware = layout(tmp_path_factory.mktemp("root"))
    for name in present:
        if not (firmware / name).exists():
            (firmware / name).write_bytes(b"blob")
    listed = [blob.name for blob in FirmwareStore(firmware).blobs()]
    assert "link" not in listed and "sub" not in listed
    assert all(not name.startswith(".") for name in listed)
    assert set(listed) == {"existing.dl", *(n for n in present if n in ("sihp1018.dl", "b.dl"))}
