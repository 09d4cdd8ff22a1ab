"""Property tests for what printers tell us about themselves: IEEE 1284 device IDs (raw ioctl
replies included), sysfs attributes, and the identity a newly seen printer is saved with.

A printer's firmware writes these strings, so anything may come: they must never crash the
daemon, and a printer saved once must be recognised again after a replug (else autoadd would
write a new section to flash at every plug-in)."""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usbprintd.uci import FileStore
from usbprintd.usb.identity import UsbIdentity, exact_match, new_printer_values, unique_label
from usbprintd.usb.ieee1284 import (
    KEY_ALIASES,
    canonical_key,
    decode_device_id,
    make_and_model,
    parse_device_id,
)
from usbprintd.usb.sysfs import NotAUsbPrinter, read_identity

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])

id_keys = st.sampled_from([*KEY_ALIASES, "FWVER", "mfg", " Model ", "cmd"]) | st.text(max_size=8)
device_id_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(id_keys, st.text(max_size=20)), max_size=8).map(
        lambda pairs: "".join(f"{k}:{v};" for k, v in pairs)),
)


@FUZZ
@given(device_id_text)
def test_any_device_id_text_parses_into_canonical_fields(text: str) -> None:
    fields = parse_device_id(text)
    for key, value in fields.items():
        assert key and key == canonical_key(key) and key == key.upper()
        assert ";" not in key and ";" not in value and value == value.strip()


plain = st.text(alphabet=string.ascii_letters + string.digits + " -_.,/()", max_size=20)


@FUZZ
@given(st.dictionaries(st.sampled_from(["MFG", "MDL", "CMD", "CLS", "DES", "FWVER", "SN"]),
                       plain.map(str.strip), min_size=1, max_size=7))
def test_a_well_formed_device_id_reads_back_field_for_field(fields: dict[str, str]) -> None:
    text = "".join(f"{key}:{value};" for key, value in fields.items())
    assert parse_device_id(text) == fields


@FUZZ
@given(st.binary(max_size=300))
def test_any_ioctl_reply_decodes_to_text_or_nothing(reply: bytes) -> None:
    text = decode_device_id(reply)
    assert isinstance(text, str) and "\0" not in text and text == text.strip()
    assert len(text.encode()) <= 3 * max(0, len(reply) - 2)  # never more than was sent
    parse_device_id(text)


@FUZZ
@given(st.text(max_size=100).filter(lambda t: "\0" not in t))
def test_a_device_id_with_a_big_endian_length_decodes_exactly(text: str) -> None:
    body = text.strip().encode()
    if len(body) + 2 < 14 or len(body) + 2 > 0xFFFF:
        return  # too short to be told apart from garbage: CUPS's rule
    reply = (len(body) + 2).to_bytes(2, "big") + body + b"\0stale bytes"
    assert decode_device_id(reply) == body.decode()


@FUZZ
@given(st.dictionaries(st.sampled_from(["MFG", "MDL"]), st.text(max_size=20)),
       st.text(max_size=20), st.text(max_size=20))
def test_make_and_model_never_fails(fields: dict[str, str], maker: str, product: str) -> None:
    assert isinstance(make_and_model(fields, maker, product), str)


# --- sysfs --------------------------------------------------------------------------------------

attribute_bytes = st.one_of(st.binary(max_size=40), st.text(max_size=30).map(str.encode),
                            st.sampled_from([b"03f0\n", b"4117\n", b"", b"\xff\xfe", b"07\n"]))


def write_sysfs(root: Path, attrs: dict[str, bytes], interface_attrs: dict[str, bytes]) -> Path:
    device = root / "devices" / "usb1" / "1-1.2"
    interface = device / "1-1.2:1.0"
    (interface / "usbmisc" / "lp0").mkdir(parents=True)
    for name, value in attrs.items():
        (device / name).write_bytes(value)
    for name, value in interface_attrs.items():
        (interface / name).write_bytes(value)
    return interface / "usbmisc" / "lp0"


@SLOW_FUZZ
@given(st.dictionaries(st.sampled_from(["idVendor", "idProduct", "serial", "manufacturer",
                                        "product", "busnum", "devnum"]), attribute_bytes),
       st.dictionaries(st.just("bInterfaceProtocol"), attribute_bytes))
def test_any_sysfs_attributes_give_an_identity_or_a_clear_refusal(
    tmp_path_factory, attrs: dict[str, bytes], interface_attrs: dict[str, bytes]
) -> None:
    lp = write_sysfs(tmp_path_factory.mktemp("sys"), attrs, interface_attrs)
    try:
        identity = read_identity(lp)
    except NotAUsbPrinter:
        assert not attrs.get("idVendor", b"").strip() or not attrs.get("idProduct", b"").strip()
        return
    assert identity.vid == identity.vid.lower() and identity.vid
    assert identity.serial == identity.serial.strip()
    assert identity.protocol is None or identity.protocol >= 0


# --- saving a newly seen printer --------------------------------------------------------------

# What sysfs can hand us: read_text(errors="replace").strip() of a USB string descriptor.
printable_usb_string = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn",
                                                                   "Zl", "Zp")),
                               max_size=24).map(str.strip)
raw_usb_string = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24).map(str.strip)


def identities(strings: st.SearchStrategy[str]) -> st.SearchStrategy[UsbIdentity]:
    return st.builds(
        UsbIdentity,
        vid=st.text("0123456789abcdef", min_size=4, max_size=4),
        pid=st.text("0123456789abcdef", min_size=4, max_size=4),
        serial=strings,
        usb_path=st.sampled_from(["1-1", "1-1.2", "2-1.4.3"]),
        manufacturer=strings,
        product=strings,
        protocol=st.sampled_from([None, 1, 2, 3]),
    )


def save_and_read_back(directory: Path, identity: UsbIdentity, fields: dict[str, str]) -> None:
    """What autoadd writes (registry.add_printer into the real file store) reads back as a
    section that matches the very same printer."""
    from usbprintd.registry import Registry

    path = directory / "usbprintd"
    registry = Registry(FileStore(path))
    registry.reload()
    label = unique_label(make_and_model(fields, identity.manufacturer, identity.product)
                         or f"USB printer {identity.usb_id}", [])
    section = registry.add_printer(label, new_printer_values(identity, False, ""))

    reread = Registry(FileStore(path))
    assert reread.reload()
    printer = reread.config.printer(section)
    assert printer is not None and printer.valid, printer
    assert exact_match(identity, printer)
    assert printer.display_name == label


@SLOW_FUZZ
@given(identities(printable_usb_string), st.dictionaries(st.just("MDL"), printable_usb_string))
def test_a_new_printer_saved_by_autoadd_is_recognised_after_a_replug(
    tmp_path_factory, identity: UsbIdentity, fields: dict[str, str]
) -> None:
    save_and_read_back(tmp_path_factory.mktemp("config"), identity, fields)


@SLOW_FUZZ
@given(identities(raw_usb_string), st.dictionaries(st.just("MDL"), raw_usb_string))
def test_a_printer_with_control_characters_in_its_strings_is_saved_too(
    tmp_path_factory, identity: UsbIdentity, fields: dict[str, str]
) -> None:
    save_and_read_back(tmp_path_factory.mktemp("config"), identity, fields)
