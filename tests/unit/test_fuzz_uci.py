"""Property tests for the UCI text format and the file store: arbitrary text is either read or
refused with a UciError (never another exception), what we write reads back as written, and an
edit changes exactly what it says while the owner's comments survive.

A deeper coverage-guided run of the same checks: `make fuzz` (tests/fuzz/).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_properties import (
    check_document_keeps_text,
    check_edit,
    check_file_store_reads,
    check_p910nd_import,
    check_uci_text,
)

from usbprintd.uci import (
    AddSection,
    DeleteOption,
    DeleteSection,
    SetOption,
    UciChange,
    UciSection,
    format_sections,
    parse_sections,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FS_FUZZ = settings(max_examples=120, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

# --- arbitrary text ---------------------------------------------------------------------------

TOKENS = ["config", "option", "list", "package", "c", "o", "l", "p", " ", "\t", "\n", "\r\n",
          "'", '"', "\\", "\\\n", "#", ";", "printer", "main", "name", "@printer[0]", "''",
          "'a b'", '"x\\"y"', "é", "\0", "\x0b", "cfg012345", "-", "9100"]
uci_like = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@FUZZ
@given(st.one_of(uci_like, st.text(max_size=200)))
def test_any_text_is_read_or_refused_with_a_uci_error(text: str) -> None:
    check_uci_text(text, "fuzz.conf")


@FS_FUZZ
@given(st.binary(max_size=200))
def test_the_file_store_reads_any_bytes_or_refuses_them_with_a_uci_error(
    tmp_path_factory, data: bytes
) -> None:
    check_file_store_reads(tmp_path_factory.mktemp("uci") / "usbprintd", data)


@FUZZ
@given(st.one_of(uci_like, st.text(max_size=200)))
def test_text_that_reads_is_kept_byte_for_byte_by_a_document(text: str) -> None:
    check_document_keeps_text(text)


# --- well-formed sections ---------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)
types = st.sampled_from(["printer", "usbprintd", "p910nd"]) | st.from_regex(r"[!-~]{1,6}",
                                                                           fullmatch=True)
section_types = st.sampled_from(["printer", "usbprintd", "p910nd"])
# libuci refuses line breaks and control characters in values (a tab is fine).
value_chars = st.characters(blacklist_categories=("Cs",),
                            blacklist_characters=[chr(c) for c in range(32) if c != 9])
values = st.text(value_chars, min_size=1, max_size=16)
options = st.dictionaries(names, values | st.lists(st.text(value_chars, max_size=8),
                                                  min_size=1, max_size=3), max_size=4)


@st.composite
def section_lists(draw) -> list[UciSection]:
    result: list[UciSection] = []
    taken: set[str] = set()
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(["a", "b", "main", "hp"]) | names | st.just(""))
        anonymous = not name or name in taken  # a name declared twice is one section
        taken.add(name)
        result.append(UciSection(draw(types), name, draw(options), anonymous=anonymous))
    counts: dict[str, int] = {}
    for section in result:
        index = counts.get(section.type, 0)
        counts[section.type] = index + 1
        if section.anonymous:
            section.name = f"@{section.type}[{index}]"
    return result


@FUZZ
@given(section_lists())
def test_written_sections_read_back_unchanged(sections: list[UciSection]) -> None:
    assert parse_sections(format_sections(sections)) == sections


# --- edits against the reference model (parser_properties.EditModel) ------------------------


section_refs = st.sampled_from(["a", "b", "main", "hp", "@printer[0]", "@printer[-1]",
                                "@p910nd[1]", "nosuch"])
changes = st.lists(st.one_of(
    st.builds(SetOption, section_refs, st.sampled_from(["port", "name", "enabled"]) | names,
              values | st.just("") | st.lists(st.text(value_chars, max_size=6), max_size=2)),
    st.builds(DeleteOption, section_refs, st.sampled_from(["port", "name"]) | names),
    st.builds(AddSection, st.sampled_from(["printer", "usbprintd", "p910nd"]),
              st.sampled_from(["", "a", "b", "main", "hp"])),
    st.builds(DeleteSection, section_refs),
), max_size=6)

COMMENTED = """\
# usbprintd configuration, edited by hand
config usbprintd 'main'
\toption queue_limit '8'   # keep this small

config printer 'hp'
\t# the office printer
\toption name 'HP LaserJet 1018'
\toption port '9100'

config printer
\toption name 'anonymous one'
"""


@FS_FUZZ
@given(st.sampled_from(["commented", "generated"]), section_lists(), changes)
def test_an_edit_changes_what_it_says_and_keeps_the_comments(
    tmp_path_factory, start: str, generated: list[UciSection], batch: list[UciChange]
) -> None:
    text = COMMENTED if start == "commented" else format_sections(generated)
    check_edit(tmp_path_factory.mktemp("uci") / "usbprintd", text, batch)


# --- importing /etc/config/p910nd --------------------------------------------------------------

P910ND_OPTIONS = ["device", "port", "bind", "enabled", "bidirectional", "mdns", "runas_root",
                  "usbvidpid", "driver_file", "driver_home", "mdns_ty", "mdns_mfg", "mdns_mdl",
                  "mdns_product"]
P910ND_VALUES = ["", " ", "0", "1", "9", "10", "/dev/usb/lp0", " /dev/usb/lp1 ", "03f0/4117",
                 "3f0:4117", "127.0.0.1", "::1", "nowhere", "yes", "sihp1018.dl",
                 "/opt/p910nd_drivers/HP_1018_03f0_4117.bin", "HP LaserJet 1018", "a\nb"]
p910nd_values = st.sampled_from(P910ND_VALUES) | st.text(max_size=8)
p910nd_sections = st.lists(st.builds(
    UciSection, type=st.sampled_from(["p910nd", "hotplug", "other"]),
    name=st.sampled_from(["a", "b", "@p910nd[0]"]),
    options=st.dictionaries(st.sampled_from(P910ND_OPTIONS),
                            p910nd_values | st.lists(p910nd_values, max_size=2), max_size=8),
), max_size=4)


@FUZZ
@given(p910nd_sections)
def test_any_p910nd_file_is_imported_once(p910nd: list[UciSection]) -> None:
    check_p910nd_import(p910nd)
