"""Property tests for the UCI schema: whatever sections a config file or a web form holds,
validation answers with settings and messages, never with an exception, and what it accepts
survives being written and read back unchanged."""

from __future__ import annotations

import re
from dataclasses import fields, replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from usbprintd.config import (
    GLOBAL_PARSERS,
    GLOBAL_TYPE,
    PRINTER_PARSERS,
    PRINTER_TYPE,
    Config,
    GlobalSettings,
    PrinterSettings,
    binds_overlap,
    format_value,
    next_free_port,
    parse_config,
    printer_changes,
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
    config = parse_config(raw)
    assert isinstance(config, Config)
    # Every printer section becomes exactly one printer, in file order.
    assert [p.section for p in config.printers] == [s.name for s in raw if s.type == PRINTER_TYPE]
    for printer in config.printers:
        assert 10 <= printer.port <= 65535  # 0-9 were turned into 9100-9109
        for problem in printer.problems:
            option = problem.split(":", 1)[0]
            assert any(i.section == printer.section and i.option == option for i in config.issues)
    served = [p for p in config.printers if p.enabled and p.valid]
    for n, first in enumerate(served):
        for second in served[n + 1:]:
            assert not (first.port == second.port and binds_overlap(first.bind, second.bind))
    s = config.settings
    assert 0 <= s.queue_limit <= 1000 and 1 <= s.base_port <= 65535 and 0 <= s.web_port <= 65535
    assert 0 <= s.idle_timeout <= 86400 and 0 <= s.drain_grace <= 86400
    assert s.auth in ("rpcd", "password", "none") and s.log_level in ("debug", "info", "warning",
                                                                      "error")
    if s.auth == "none" and s.web_port:
        assert s.web_listen and re.match(r"^(127\.|::1$)", s.web_listen)


def _written(printer: PrinterSettings) -> UciSection:
    """The section FileStore/PyUciStore would hold after saving `printer` in full."""
    return UciSection(PRINTER_TYPE, printer.section,
                      {c.option: c.value for c in printer_changes(printer)})


@FUZZ
@given(st.lists(sections, max_size=6))
def test_every_accepted_printer_survives_a_write_and_read_back(raw: list[UciSection]) -> None:
    for printer in parse_config(raw).printers:
        if not printer.valid:
            continue
        again = parse_config([_written(printer)]).printer(printer.section)
        assert again == printer
        # Booleans are written explicitly, never left out for being the default.
        options = _written(printer).options
        assert {options[f] for f in ("enabled", "bidirectional", "mdns")} <= {"0", "1"}


@FUZZ
@given(st.lists(sections, max_size=6))
def test_accepted_global_settings_survive_a_write_and_read_back(raw: list[UciSection]) -> None:
    settings_ = parse_config(raw).settings
    written = {f.name: format_value(getattr(settings_, f.name)) for f in fields(GlobalSettings)}
    assert parse_config([UciSection(GLOBAL_TYPE, "main", written)]).settings == settings_


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
    form = data.draw(forms)
    config = parse_config(raw)
    values_, errors = validate_printer_form(config, section, form)
    assert set(errors) <= set(form) | {"section", "port"}
    base = config.printer(section)
    if errors or base is None or not base.valid:
        event("form refused or printer already invalid")
        return
    if len(set(names)) != len(names):
        return  # the stores merge sections declared twice, as libuci does
    event("form accepted")
    for option, value in values_.items():  # what validation accepts, the store can write
        check_value(format_value(value), option)
    saved = [
        replace(s, options={**s.options, **{k: format_value(v) for k, v in values_.items()}})
        if s.type == PRINTER_TYPE and s.name == section else s
        for s in raw
    ]
    after = parse_config(saved)
    edited = after.printer(section)
    assert edited is not None and edited.valid, edited
    assert replace(edited, problems=()) == replace(base, **values_)
    for before in config.printers:
        if before.valid and before.section != section:
            assert after.printer(before.section).valid


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(GLOBAL_PARSERS)), st.text(max_size=6)),
                       values, max_size=6))
def test_a_settings_form_either_reports_errors_or_gives_settings_that_read_back(
    form: dict[str, str]
) -> None:
    values_, errors = validate_global_form(form)
    assert set(errors) <= set(form)
    assert set(values_) <= set(GLOBAL_PARSERS)
    if errors:
        return
    written = {k: format_value(v) for k, v in values_.items()}
    for option, text in written.items():  # what validation accepts, the store can write
        check_value(text, option)
    reread = parse_config([UciSection(GLOBAL_TYPE, "main", written)])
    expected = replace(GlobalSettings(), **values_)
    if not any(i.option == "auth" for i in reread.issues):
        assert reread.settings == expected


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
