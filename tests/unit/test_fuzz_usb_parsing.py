"""Property tests for what printers tell us about themselves: IEEE 1284 device IDs (raw ioctl
replies included), sysfs attributes, and the identity a newly seen printer is saved with.

A printer's firmware writes these strings, so anything may come: they must never crash the
daemon, and a printer saved once must be recognised again after a replug (else autoadd would
write a new section to flash at every plug-in)."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_properties import (
    check_big_endian_reply,
    check_device_id_text,
    check_ioctl_reply,
    check_make_and_model,
    check_saved_printer_is_recognised,
    check_sysfs_identity,
    write_sysfs,
)

from usbprintd.usb.identity import UsbIdentity
from usbprintd.usb.ieee1284 import KEY_ALIASES, parse_device_id

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
    check_device_id_text(text)


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
    check_ioctl_reply(reply)


@FUZZ
@given(st.text(max_size=100).filter(lambda t: "\0" not in t))
def test_a_device_id_with_a_big_endian_length_decodes_exactly(text: str) -> None:
    check_big_endian_reply(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(["MFG", "MDL"]), st.text(max_size=20)),
       st.text(max_size=20), st.text(max_size=20))
def test_make_and_model_never_fails(fields: dict[str, str], maker: str, product: str) -> None:
    check_make_and_model(fields, maker, product)


# --- sysfs --------------------------------------------------------------------------------------

attribute_bytes = st.one_of(st.binary(max_size=40), st.text(max_size=30).map(str.encode),
                            st.sampled_from([b"03f0\n", b"4117\n", b"", b"\xff\xfe", b"07\n"]))


@SLOW_FUZZ
@given(st.dictionaries(st.sampled_from(["idVendor", "idProduct", "serial", "manufacturer",
                                        "product", "busnum", "devnum"]), attribute_bytes),
       st.dictionaries(st.just("bInterfaceProtocol"), attribute_bytes))
def test_any_sysfs_attributes_give_an_identity_or_a_clear_refusal(
    tmp_path_factory, attrs: dict[str, bytes], interface_attrs: dict[str, bytes]
) -> None:
    lp = write_sysfs(tmp_path_factory.mktemp("sys"), attrs, interface_attrs)
    check_sysfs_identity(lp, attrs)


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


@SLOW_FUZZ
@given(identities(printable_usb_string), st.dictionaries(st.just("MDL"), printable_usb_string))
def test_a_new_printer_saved_by_autoadd_is_recognised_after_a_replug(
    tmp_path_factory, identity: UsbIdentity, fields: dict[str, str]
) -> None:
    check_saved_printer_is_recognised(tmp_path_factory.mktemp("config"), identity, fields)


@SLOW_FUZZ
@given(identities(raw_usb_string), st.dictionaries(st.just("MDL"), raw_usb_string))
def test_a_printer_with_control_characters_in_its_strings_is_saved_too(
    tmp_path_factory, identity: UsbIdentity, fields: dict[str, str]
) -> None:
    check_saved_printer_is_recognised(tmp_path_factory.mktemp("config"), identity, fields)
