"""Property tests for the UCI text format and the file store: arbitrary text is either read or
refused with a UciError (never another exception), what we write reads back as written, and an
edit changes exactly what it says while the owner's comments survive.

An optional deeper run with atheris (coverage-guided, not part of `make test`):

    .venv/bin/pip install atheris
    .venv/bin/python - <<'EOF'
    import sys, atheris
    with atheris.instrument_imports():
        from usbprintd.uci import UciError, parse_sections
    def one(data: bytes) -> None:
        try:
            parse_sections(data.decode("utf-8", "replace"))
        except UciError:
            pass
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
    EOF
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usbprintd.uci import (
    AddSection,
    DeleteOption,
    DeleteSection,
    FileStore,
    SetOption,
    UciChange,
    UciDocument,
    UciError,
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
    try:
        sections = parse_sections(text, "fuzz.conf")
    except UciError as err:
        assert str(err).startswith("fuzz.conf")  # says where
        return
    for section in sections:
        assert section.name and section.type
        assert all(value != "" for value in section.options.values())


@FS_FUZZ
@given(st.binary(max_size=200))
def test_the_file_store_reads_any_bytes_or_refuses_them_with_a_uci_error(
    tmp_path_factory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("uci") / "usbprintd"
    path.write_bytes(data)
    try:
        FileStore(path).load()
    except UciError as err:
        assert str(path) in str(err)
    assert path.read_bytes() == data


@FUZZ
@given(st.one_of(uci_like, st.text(max_size=200)))
def test_text_that_reads_is_kept_byte_for_byte_by_a_document(text: str) -> None:
    try:
        document = UciDocument(text)
    except UciError:
        return
    assert document.text() == text
    assert parse_sections(document.text()) == document.sections


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


# --- edits: a reference model ----------------------------------------------------------------


@dataclass
class Model:
    """What a list of changes means, written independently of the store."""

    sections: list[UciSection] = field(default_factory=list)

    def find(self, wanted: str) -> int | None:
        match = re.fullmatch(r"@(.+)\[(-?\d+)\]", wanted)
        if match:
            of_type = [i for i, s in enumerate(self.sections) if s.type == match[1]]
            try:
                return of_type[int(match[2])]
            except IndexError:
                return None
        return next((i for i, s in enumerate(self.sections)
                     if not s.anonymous and s.name == wanted), None)

    def apply(self, change: UciChange) -> None:
        if isinstance(change, AddSection):
            index = self.find(change.name) if change.name else None
            if index is not None:
                if self.sections[index].type != change.type:
                    raise UciError("type clash")
                return
            self.sections.append(UciSection(change.type, change.name, {},
                                            anonymous=not change.name))
        elif isinstance(change, DeleteSection):
            index = self.find(change.name)
            if index is not None:
                del self.sections[index]
        else:
            index = self.find(change.section)
            if index is None:
                if isinstance(change, DeleteOption):
                    return
                raise UciError("no such section")
            options = self.sections[index].options
            if isinstance(change, DeleteOption) or change.value in ("", []):
                options.pop(change.option, None)
            else:
                options[change.option] = change.value
        self.rename()

    def rename(self) -> None:
        counts: dict[str, int] = {}
        for section in self.sections:
            index = counts.get(section.type, 0)
            counts[section.type] = index + 1
            if section.anonymous:
                section.name = f"@{section.type}[{index}]"


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
    path: Path = tmp_path_factory.mktemp("uci") / "usbprintd"
    path.write_text(text)
    model = Model(parse_sections(text))
    try:
        for change in batch:
            model.apply(change)
    except UciError:
        expected = None  # the batch is refused as a whole
    else:
        expected = model.sections
    try:
        FileStore(path).apply(batch)
    except UciError:
        assert expected is None, "the store refused a batch the model accepts"
        assert path.read_text() == text, "a refused batch wrote nothing"
        return
    assert expected is not None, "the store accepted a batch the model refuses"
    assert FileStore(path).load() == expected
    if not any(isinstance(change, DeleteSection) for change in batch):
        comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
        assert all(comment in path.read_text() for comment in comments)
