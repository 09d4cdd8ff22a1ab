"""IEEE 1284 device IDs: the aliases CUPS accepts, canonical keys, and the length prefix."""

from __future__ import annotations

import pytest

from usbprintd.usb.ieee1284 import (
    decode_device_id,
    has_firmware_version,
    make_and_model,
    parse_device_id,
)

HP_1018 = "MFG:Hewlett-Packard;MDL:HP LaserJet 1018;CMD:ACL;CLS:PRINTER;DES:HP LaserJet 1018;"


def test_plain_id_gives_canonical_keys():
    assert parse_device_id(HP_1018) == {
        "MFG": "Hewlett-Packard", "MDL": "HP LaserJet 1018", "CMD": "ACL", "CLS": "PRINTER",
        "DES": "HP LaserJet 1018"}


@pytest.mark.parametrize(("key", "canonical"), [
    ("MANUFACTURER", "MFG"), ("mfr", "MFG"), ("Model", "MDL"), ("COMMAND SET", "CMD"),
    ("command  set", "CMD"), ("class", "CLS"), ("Description", "DES"), ("COMPATIBLE ID", "CID"),
    ("SERN", "SN"), ("SerialNumber", "SN"), ("sn", "SN"), ("fwver", "FWVER"),
])
def test_aliases_are_case_insensitive_and_trimmed(key, canonical):
    assert parse_device_id(f"  {key} : value one ;") == {canonical: "value one"}


def test_first_occurrence_wins_and_junk_is_ignored():
    fields = parse_device_id("MANUFACTURER:Brother;MFG:Other;garbage;:novalue;MDL:HL-L2350DW")
    assert fields == {"MFG": "Brother", "MDL": "HL-L2350DW"}


def test_value_may_contain_a_colon():
    assert parse_device_id("DES:Model: deluxe;")["DES"] == "Model: deluxe"


def test_fwver_marks_running_firmware():
    assert not has_firmware_version(parse_device_id(HP_1018))
    assert has_firmware_version(parse_device_id(HP_1018 + "FWVER:20041006;"))


def with_length(text: str, order: str = "big", size: int = 1024) -> bytes:
    body = text.encode()
    return ((len(body) + 2).to_bytes(2, order) + body).ljust(size, b"\0")


def test_big_endian_length_counts_itself():
    assert decode_device_id(with_length(HP_1018)) == HP_1018


def test_little_endian_length_quirk_is_detected():
    assert decode_device_id(with_length(HP_1018, "little")) == HP_1018


def test_length_beyond_the_buffer_is_clamped():
    buffer = with_length(HP_1018)[:40]
    assert decode_device_id(buffer) == HP_1018[:38]


def test_stale_bytes_after_the_length_are_not_part_of_the_id():
    buffer = bytearray(with_length("MFG:HP;MDL:LaserJet 1020;"))
    buffer[27:40] = b"leftover junk"
    assert decode_device_id(bytes(buffer)) == "MFG:HP;MDL:LaserJet 1020;"


@pytest.mark.parametrize("buffer", [b"", b"\x00", b"\x00\x00" + b"\0" * 100, b"\x00\x05abc"])
def test_unusable_replies_give_an_empty_id(buffer):
    assert decode_device_id(buffer) == ""


@pytest.mark.parametrize(("fields", "manufacturer", "product", "name"), [
    ({"MFG": "Hewlett-Packard", "MDL": "HP LaserJet 1018"}, "", "", "HP LaserJet 1018"),
    ({"MFG": "Brother", "MDL": "HL-L2350DW series"}, "", "", "Brother HL-L2350DW series"),
    ({"MFG": "EPSON", "MDL": "Epson Stylus"}, "", "", "Epson Stylus"),
    ({}, "Samsung", "ML-2160 Series", "Samsung ML-2160 Series"),
    ({}, "", "", ""),
    ({"MFG": "Zebra"}, "", "", "Zebra"),
    ({"MFG": "Acme\n", "MDL": "Laser\t\x07 9000\r"}, "", "", "Acme Laser 9000"),
])
def test_make_and_model(fields, manufacturer, product, name):
    assert make_and_model(fields, manufacturer, product) == name
