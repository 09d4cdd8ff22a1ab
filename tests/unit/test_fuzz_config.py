"""Property tests for the UCI schema: whatever sections a config file or a web form holds,
validation answers with settings and messages, never with an exception, and what it accepts
survives being written and read back unchanged."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from parser_properties import (
    check_config,
    check_printer_form,
    check_printers_read_back,
    check_settings_form,
    check_settings_read_back,
)

from usbprintd.config import (
    GLOBAL_PARSERS,
    GLOBAL_TYPE,
    PRINTER_PARSERS,
    PRINTER_TYPE,
    Config,
    GlobalSettings,
    PrinterSettings,
    format_value,
    next_free_port,
    parse_config,
    section_name_for,
    validate_global_form,
    validate_printer_form,
)
from usbprintd.uci import UciSection, check_value

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that sit on the edges of the validators, mixed with arbitrary text.
TRICKY_VALUES = [
    "", " ", "0", "1", "9", "10", "9100", " 9100 ", "65535", "65536", "-1", "1_000", "0x10",
    "٣", "1e3", "1e400", "nan", "inf", "-0", "0.5", "86400", "86401", "yes", "No", "ON",
    "enabled", "true ", "127.0.0.1", "::1", "::", "0.0.0.0", "fe80::1%lo", "256.0.0.1",
    "192.0.2.1", "03f0:4117", "03F0:4117", "3f0:4117", "sihp1018.dl", "../x", "a/b", ".",
    "..", "x\0y", "rpcd", "password", "none", "NONE", "debug", "warning", "LOUD",
    "/dev/usb/lp0", "line\nbreak", "'quoted'", '"double"', "\\", "#comment",
]
OPTION_NAMES = [*sorted({*GLOBAL_PARSERS, *PRINTER_PARSERS}), "section", "problems", "driver"]

values = st.one_of(st.sampled_from(TRICKY_VALUES), st.text(max_size=20))
option_values = st.one_of(values, st.lists(values, max_size=3))
section_types = st.one_of(st.sampled_from([GLOBAL_TYPE, PRINTER_TYPE, "p910nd"]),
                          st.text(max_size=8))
sections = st.builds(
    UciSection,
    type=section_types,
    name=st.one_of(st.sampled_from(["main", "a", "b", "c", "@printer[0]"]), st.text(max_size=12)),
    options=st.dictionaries(st.one_of(st.sampled_from(OPTION_NAMES), st.text(max_size=8)),
                            option_values, max_size=8),
)


@FUZZ
@given(st.lists(sections, max_size=8))
def test_any_sections_give_a_config_whose_invariants_hold(raw: list[UciSection]) -> None:
    check_config(raw)


@FUZZ
@given(st.lists(sections, max_size=6))
def test_every_accepted_printer_survives_a_write_and_read_back(raw: list[UciSection]) -> None:
    check_printers_read_back(raw)


@FUZZ
@given(st.lists(sections, max_size=6))
def test_accepted_global_settings_survive_a_write_and_read_back(raw: list[UciSection]) -> None:
    check_settings_read_back(raw)


forms = st.dictionaries(
    st.sampled_from(["port", "bind", "enabled", "name", "bidirectional"]),
    st.sampled_from(["0", "1", "9100", "9101", "", "127.0.0.1"]),
    max_size=3,
) | st.dictionaries(st.sampled_from(sorted(PRINTER_PARSERS)) | st.text(max_size=6), values,
                    max_size=4)
printer_sections = st.builds(
    UciSection, type=st.just(PRINTER_TYPE), name=st.sampled_from(["a", "b", "c"]),
    options=st.dictionaries(st.sampled_from(["port", "bind", "enabled"]),
                            st.sampled_from(["0", "1", "9100", "9101", "127.0.0.1", "::1", ""]),
                            max_size=3),
)


@FUZZ
@given(st.lists(printer_sections | sections, max_size=5), st.data())
def test_a_printer_form_either_reports_errors_or_keeps_the_config_valid(
    raw: list[UciSection], data: st.DataObject
) -> None:
    """What the web page accepts for a valid printer is still valid after the reload that
    follows the save, and no other printer loses its port because of it."""
    names = [s.name for s in raw if s.type == PRINTER_TYPE]
    section = data.draw(st.sampled_from(names) if names else st.text(max_size=4))
    event(check_printer_form(raw, section, data.draw(forms)))


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(GLOBAL_PARSERS)), st.text(max_size=6)),
                       values, max_size=6))
def test_a_settings_form_either_reports_errors_or_gives_settings_that_read_back(
    form: dict[str, str]
) -> None:
    check_settings_form(form)


@FUZZ
@given(st.sampled_from([("printer", o) for o in sorted(PRINTER_PARSERS)]
                       + [("global", o) for o in sorted(GLOBAL_PARSERS)]),
       st.text(max_size=12) | st.sampled_from(TRICKY_VALUES))
def test_one_field_is_either_refused_or_storable(field: tuple[str, str], raw: str) -> None:
    """Whatever text one form field holds, validation refuses it or the store can write it
    (the store refuses line breaks and control characters, as libuci does)."""
    kind, option = field
    if kind == "printer":
        config = parse_config([UciSection(PRINTER_TYPE, "p", {})])
        values_, errors = validate_printer_form(config, "p", {option: raw})
    else:
        values_, errors = validate_global_form({option: raw})
    if not errors:
        check_value(format_value(values_[option]), option)


@FUZZ
@given(st.text(max_size=30), st.lists(st.text(max_size=12), max_size=5))
def test_section_names_from_any_label_are_plain_and_unique(label: str, taken: list[str]) -> None:
    name = section_name_for(label, taken)
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
    assert name not in taken


@FUZZ
@given(st.lists(st.integers(1, 65535) | st.integers(65530, 65535), max_size=10),
       st.integers(1, 65535) | st.integers(65530, 65535))
def test_next_free_port_is_free_and_not_below_base(ports: list[int], base: int) -> None:
    config = Config(settings=GlobalSettings(base_port=base),
                    printers=tuple(PrinterSettings(f"p{n}", port=p) for n, p in enumerate(ports)))
    port = next_free_port(config)
    assert port >= base and port not in ports
    # Past 65535 only when every port from base up is taken; the new printer is then shown as
    # invalid ("out of range") rather than silently sharing a port.
    assert port <= 65535 or set(range(base, 65536)) <= set(ports)
