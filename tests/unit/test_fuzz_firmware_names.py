"""Property tests for uploaded firmware file names, with real files in a temporary directory:
whatever name a browser (or an attacker) sends, the store writes and deletes only plain files
directly inside firmware_dir, never anywhere else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_properties import (
    check_firmware_delete,
    check_firmware_save,
    check_safe_name,
    firmware_layout,
)

from usbprintd.web.firmware import FirmwareStore

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
    check_safe_name(name)


@FS_FUZZ
@given(names)
def test_saving_under_any_name_writes_only_one_file_inside_firmware_dir(
    tmp_path_factory, name: str
) -> None:
    root = tmp_path_factory.mktemp("root")
    firmware_layout(root)
    check_firmware_save(root, name)


@FS_FUZZ
@given(names)
def test_deleting_under_any_name_removes_at_most_one_plain_file_inside_firmware_dir(
    tmp_path_factory, name: str
) -> None:
    root = tmp_path_factory.mktemp("root")
    firmware_layout(root)
    check_firmware_delete(root, name)


@FUZZ
@given(st.lists(st.sampled_from(["sihp1018.dl", ".upload-x", "link", "sub", "b.dl"]),
                unique=True))
def test_listing_shows_only_plain_visible_files(tmp_path_factory, present: list[str]) -> None:
    firmware = firmware_layout(tmp_path_factory.mktemp("root"))
    for name in present:
        if not (firmware / name).exists():
            (firmware / name).write_bytes(b"blob")
    listed = [blob.name for blob in FirmwareStore(firmware).blobs()]
    assert "link" not in listed and "sub" not in listed
    assert all(not name.startswith(".") for name in listed)
    assert set(listed) == {"existing.dl", *(n for n in present if n in ("sihp1018.dl", "b.dl"))}
