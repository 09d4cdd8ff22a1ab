"""The contract both UCI stores honour: FileStore (our own reader/writer) and PyUciStore (libuci).

Every test that takes `subject` runs against both. PyUciStore needs pyuci, which compiles only
against libuci; where that is missing its runs are skipped with the reason, never faked.
Tests named *file_store* cover what only the line-preserving file store promises (libuci
rewrites the whole file on commit, dropping comments, like `uci commit`).
"""

from __future__ import annotations

import stat
import sys
import types
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from usbprintd import uci as uci_module
from usbprintd.uci import (
    DEFAULT_CONFIG_PATH,
    AddSection,
    ConfigStore,
    DeleteOption,
    DeleteSection,
    FileStore,
    PyUciStore,
    SetOption,
    UciError,
    UciSection,
    open_store,
    parse_sections,
)

PYUCI_MISSING = (
    "pyuci (module 'uci') is not installed: it compiles only against libuci (uci.h, libuci.so), "
    "which Debian 12 does not package and no PyPI, npm or Debian source ships; the PyUciStore "
    "contract runs where python3-uci is installed (OpenWrt)"
)


def _pyuci_importable() -> bool:
    try:
        import uci  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Subject:
    kind: str
    store: ConfigStore
    path: Path  # the file behind the store

    def write(self, text: str) -> None:
        self.path.write_text(text)

    def raw(self) -> bytes:
        return self.path.read_bytes()


@pytest.fixture(params=["file", "pyuci"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    confdir = tmp_path / "config"
    confdir.mkdir()
    path = confdir / "usbprintd"
    if request.param == "file":
        return Subject("file", FileStore(path), path)
    if not _pyuci_importable():
        pytest.skip(PYUCI_MISSING)
    savedir = tmp_path / "save"
    savedir.mkdir()
    store = PyUciStore("usbprintd", confdir=str(confdir), savedir=str(savedir))
    return Subject("pyuci", store, path)


def by_name(sections: list[UciSection]) -> dict[str, UciSection]:
    return {section.name: section for section in sections}


BASIC = """\
config usbprintd 'main'
	option autoadd '1'
	option base_port '9100'

config printer 'hp'
	option name 'HP LaserJet 1018'
	option port '9100'
"""


# --- reading -------------------------------------------------------------------------------------


def test_missing_package_loads_as_empty(subject: Subject) -> None:
    assert subject.store.load() == []


def test_load_returns_sections_in_file_order_with_types_and_options(subject: Subject) -> None:
    subject.write(BASIC)
    assert subject.store.load() == [
        UciSection("usbprintd", "main", {"autoadd": "1", "base_port": "9100"}),
        UciSection("printer", "hp", {"name": "HP LaserJet 1018", "port": "9100"}),
    ]


TRICKY = """\
# every quoting style libuci reads
config printer 'q'
	option plain 9100
	option single 'two words'
	option double "say \\"hi\\" \\\\ back"
	option glued 'it'\\''s'
	option escaped_space a\\ b
	option hash_ends_value abc#def
	option trailing 'x'   # a comment
	option empty ''
	option multi 'line one
line two'
	option joined "first \\
second"
	list mixed 'a'
	list mixed "b c"
	list mixed d
config printer 'r'; option port 1; option bind '::1'
"""


def test_reads_every_quoting_style_like_libuci(subject: Subject) -> None:
    subject.write(TRICKY)
    q, r = subject.store.load()
    assert q.options == {
        "plain": "9100",
        "single": "two words",
        "double": 'say "hi" \\ back',
        "glued": "it's",
        "escaped_space": "a b",
        "hash_ends_value": "abc",
        "trailing": "x",
        "multi": "line one\nline two",
        "joined": "first second",
        "mixed": ["a", "b c", "d"],
    }
    assert "empty" not in q.options  # an empty option does not exist in UCI
    assert r == UciSection("printer", "r", {"port": "1", "bind": "::1"})


def test_later_statements_override_earlier_ones_as_in_libuci(subject: Subject) -> None:
    subject.write("config printer 'p'\n\toption a '1'\n\toption a '2'\n\toption b 'x'\n"
                  "\toption b ''\n\toption c 'one'\n\tlist c 'two'\n"
                  "config printer 'p'\n\toption d 'reopened'\n")
    (section,) = subject.store.load()
    # an empty option read from a file is ignored: it neither adds nor removes (libuci)
    assert section.options == {"a": "2", "b": "x", "c": ["one", "two"], "d": "reopened"}


def test_anonymous_sections_are_named_by_index_among_sections_of_their_type(
        subject: Subject) -> None:
    subject.write("config printer\n\toption name 'first'\n\n"
                  "config printer 'named'\n\toption name 'second'\n\n"
                  "config spooler\n\toption name 'other type'\n\n"
                  "config printer\n\toption name 'third'\n")
    sections = subject.store.load()
    assert [(s.name, s.anonymous, s.options["name"]) for s in sections] == [
        ("@printer[0]", True, "first"),
        ("named", False, "second"),
        ("@spooler[0]", True, "other type"),
        ("@printer[2]", True, "third"),
    ]


# --- writing -------------------------------------------------------------------------------------


def test_apply_creates_the_missing_file_and_round_trips(subject: Subject) -> None:
    subject.store.apply([
        AddSection("usbprintd", "main"),
        SetOption("main", "autoadd", "1"),
        AddSection("printer", "hp"),
        SetOption("hp", "name", "HP LaserJet 1018"),
        SetOption("hp", "port", "9100"),
    ])
    assert subject.path.exists()
    assert subject.store.load() == [
        UciSection("usbprintd", "main", {"autoadd": "1"}),
        UciSection("printer", "hp", {"name": "HP LaserJet 1018", "port": "9100"}),
    ]


@pytest.mark.parametrize("value", [
    "it's", 'say "hi"', "back\\slash", "ends with backslash\\", "  padded  ", "#not a comment",
    "semi;colon", "tab\there", "ünïcödé ✓", "$(reboot)", "'", '"', "\\'", "a'\\''b", "--",
])
def test_values_with_quotes_spaces_and_backslashes_round_trip(subject: Subject,
                                                              value: str) -> None:
    subject.write(BASIC)
    subject.store.apply([SetOption("hp", "name", value)])
    assert by_name(subject.store.load())["hp"].options["name"] == value
    # and the file reads the same through the other parser
    assert by_name(parse_sections(subject.path.read_text()))["hp"].options["name"] == value


def test_list_options_round_trip_and_replace_each_other(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.apply([SetOption("hp", "tags", ["a", "b c", "it's"])])
    assert by_name(subject.store.load())["hp"].options["tags"] == ["a", "b c", "it's"]
    subject.store.apply([SetOption("hp", "tags", ["only"])])
    assert by_name(subject.store.load())["hp"].options["tags"] == ["only"]
    subject.store.apply([SetOption("hp", "tags", "plain")])
    assert by_name(subject.store.load())["hp"].options["tags"] == "plain"
    subject.store.apply([SetOption("hp", "tags", [])])
    assert "tags" not in by_name(subject.store.load())["hp"].options


def test_set_update_and_delete_options(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.apply([SetOption("hp", "bind", "::1"), SetOption("hp", "port", "9101"),
                         DeleteOption("main", "autoadd")])
    main, hp = subject.store.load()
    assert main.options == {"base_port": "9100"}
    assert hp.options == {"name": "HP LaserJet 1018", "port": "9101", "bind": "::1"}


def test_setting_an_empty_value_deletes_the_option_as_libuci_does(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.apply([SetOption("hp", "name", ""), SetOption("hp", "serial", "")])
    assert by_name(subject.store.load())["hp"].options == {"port": "9100"}


def test_deleting_what_does_not_exist_changes_nothing(subject: Subject) -> None:
    subject.write(BASIC)
    before = subject.store.load()
    subject.store.apply([DeleteOption("hp", "nonexistent"), DeleteOption("ghost", "port"),
                         DeleteSection("ghost")])
    assert subject.store.load() == before


def test_add_and_delete_sections_keep_the_order_of_the_rest(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.apply([AddSection("printer", "second"), SetOption("second", "port", "9101"),
                         AddSection("printer", "third"), DeleteSection("hp")])
    assert [(s.type, s.name) for s in subject.store.load()] == [
        ("usbprintd", "main"), ("printer", "second"), ("printer", "third")]
    assert by_name(subject.store.load())["second"].options == {"port": "9101"}


def test_anonymous_sections_are_added_and_edited_by_index(subject: Subject) -> None:
    subject.write("config printer\n\toption name 'first'\n\nconfig printer\n\toption name 'x'\n")
    subject.store.apply([
        SetOption("@printer[1]", "name", "second"),
        AddSection("printer", ""),
        SetOption("@printer[-1]", "name", "third"),
        DeleteSection("@printer[0]"),
    ])
    sections = subject.store.load()
    assert [(s.name, s.anonymous, s.options) for s in sections] == [
        ("@printer[0]", True, {"name": "second"}),
        ("@printer[1]", True, {"name": "third"}),
    ]


def test_adding_an_existing_section_is_a_no_op_unless_the_type_differs(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.apply([AddSection("printer", "hp")])
    assert by_name(subject.store.load())["hp"].options["port"] == "9100"
    with pytest.raises(UciError, match="already exists"):
        subject.store.apply([AddSection("spooler", "hp")])


def test_unknown_sections_and_options_survive_a_write(subject: Subject) -> None:
    subject.write(BASIC + "\toption colour 'red'\n\nconfig spooler 'x'\n\tlist jobs 'a'\n")
    subject.store.apply([SetOption("hp", "port", "9101")])
    sections = by_name(subject.store.load())
    assert sections["hp"].options["colour"] == "red"
    assert sections["x"] == UciSection("spooler", "x", {"jobs": ["a"]})


def test_apply_reads_the_file_again_so_changes_by_others_are_kept(subject: Subject) -> None:
    subject.write(BASIC)
    subject.store.load()
    subject.write(BASIC + "\toption serial 'ABC'\n")  # someone else edits meanwhile
    subject.store.apply([SetOption("main", "queue_limit", "3")])
    sections = by_name(subject.store.load())
    assert sections["hp"].options["serial"] == "ABC"
    assert sections["main"].options["queue_limit"] == "3"


def test_a_batch_with_a_bad_change_writes_nothing(subject: Subject) -> None:
    subject.write(BASIC)
    before = subject.raw()
    with pytest.raises(UciError, match="ghost"):
        subject.store.apply([SetOption("hp", "port", "9105"), SetOption("ghost", "port", "1")])
    assert subject.raw() == before


@pytest.mark.parametrize("change, message", [
    (AddSection("printer", "bad-name"), "invalid section name"),
    (AddSection("printer", "@printer[0]"), "invalid section name"),
    (AddSection("bad type", "x"), "invalid section type"),
    (SetOption("hp", "bad.option", "1"), "invalid option name"),
    (SetOption("hp", "", "1"), "invalid option name"),
    (SetOption("hp", "name", "line\nbreak"), "line break"),
    (SetOption("hp", "tags", ["ok", "bell\a"]), "control character"),
])
def test_invalid_names_and_values_are_rejected(subject: Subject, change, message: str) -> None:
    subject.write(BASIC)
    before = subject.raw()
    with pytest.raises(UciError, match=message):
        subject.store.apply([change])
    assert subject.raw() == before


BROKEN = [
    ("config printer 'p'\n\toption name 'unterminated\n", 2, "unterminated ' quote"),
    ("config printer 'p'\n\toption name \"open\n", 2, "unterminated \" quote"),
    ("config printer 'p'\n\tbogus name 'x'\n", 2, "invalid command 'bogus'"),
    ("\n# comment\noption name 'x'\n", 3, "before the first 'config'"),
    ("config printer 'bad-name'\n", 1, "invalid section name"),
    ("config printer 'p'\n\toption bad.name 'x'\n", 2, "invalid option name"),
    ("config printer 'p'\n\toption name two words\n", 2, "too many arguments"),
    ("config printer 'p'\n\nconfig spooler 'p'\n", 3, "declared before with type"),
    ("config\n", 1, "needs a type"),
]


@pytest.mark.parametrize("text, line, message", BROKEN)
def test_parse_errors_name_the_file_the_line_and_the_reason(subject: Subject, text: str,
                                                            line: int, message: str) -> None:
    subject.write(text)
    with pytest.raises(UciError) as caught:
        subject.store.load()
    assert f"{subject.path}:{line}: " in str(caught.value)
    assert message in str(caught.value)


def test_a_broken_file_is_not_overwritten(subject: Subject) -> None:
    subject.write(BROKEN[0][0])
    with pytest.raises(UciError):
        subject.store.apply([AddSection("printer", "new")])
    assert subject.path.read_text() == BROKEN[0][0]


def test_what_a_store_writes_reads_the_same_through_the_file_parser(subject: Subject) -> None:
    subject.write(TRICKY)
    subject.store.apply([SetOption("q", "new", "it's \"new\""), AddSection("spooler", ""),
                         SetOption("@spooler[0]", "jobs", ["1", "2"])])
    assert parse_sections(subject.path.read_text(), str(subject.path)) == subject.store.load()


# --- the file store's own promises ---------------------------------------------------------------

COMMENTED = """\
# usbprintd configuration
# (hand-edited)

config usbprintd 'main'
	option autoadd 1        # keep adding printers
	option base_port '9100'
	option future_option 'kept'

# the laser in the hall
config printer 'hp'
    option name "HP LaserJet"
    option port 0

config spooler 'unknown'
	option x 'y'
"""


def test_file_store_keeps_comments_blank_lines_and_formatting(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    path.write_text(COMMENTED)
    FileStore(path).apply([
        SetOption("main", "autoadd", "0"),
        SetOption("hp", "bind", "192.168.1.1"),
        SetOption("hp", "port", "0"),  # same value: the line stays as written
    ])
    assert path.read_text() == COMMENTED.replace(
        "option autoadd 1        # keep", "option autoadd '0'        # keep").replace(
        "    option port 0\n", "    option port 0\n    option bind '192.168.1.1'\n")


def test_file_store_deletes_a_section_with_its_block_only(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    path.write_text(COMMENTED)
    FileStore(path).apply([DeleteSection("unknown")])
    assert path.read_text() == COMMENTED[:COMMENTED.index("\nconfig spooler")]
    FileStore(path).apply([DeleteSection("hp")])
    assert path.read_text() == COMMENTED[:COMMENTED.index("config printer")]


def test_file_store_writes_values_in_libuci_quoting(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    FileStore(path).apply([AddSection("printer", "p"), SetOption("p", "name", "it's"),
                           SetOption("p", "tags", ["a b", "c"]), AddSection("spooler", "")])
    assert path.read_text() == ("config printer 'p'\n"
                                "\toption name 'it'\\''s'\n"
                                "\tlist tags 'a b'\n"
                                "\tlist tags 'c'\n"
                                "\n"
                                "config spooler\n")


def test_file_store_failing_write_leaves_the_old_file_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "usbprintd"
    path.write_text(BASIC)

    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    for broken in ("replace", "fsync"):
        with monkeypatch.context() as patch:
            patch.setattr(uci_module.os, broken, no_space)
            with pytest.raises(UciError, match="No space left on device"):
                FileStore(path).apply([SetOption("hp", "port", "9101")])
        assert path.read_text() == BASIC
        assert sorted(p.name for p in tmp_path.iterdir()) == ["usbprintd"]  # no temp file left


def test_file_store_replaces_the_file_atomically_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    path.write_text(BASIC)
    path.chmod(0o640)
    old_inode = path.stat().st_ino
    FileStore(path).apply([SetOption("hp", "port", "9101")])
    assert path.stat().st_ino != old_inode  # a new file renamed over the old one
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_file_store_creates_new_files_private(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    FileStore(path).apply([AddSection("usbprintd", "main")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_store_leaves_the_file_alone_when_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    path.write_text(BASIC)
    inode = path.stat().st_ino
    FileStore(path).apply([SetOption("hp", "port", "9100"), DeleteOption("hp", "nothing")])
    FileStore(tmp_path / "absent").apply([DeleteSection("ghost")])
    assert path.stat().st_ino == inode
    assert not (tmp_path / "absent").exists()


def test_file_store_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text(BASIC)
    link = tmp_path / "usbprintd"
    link.symlink_to(real)
    FileStore(link).apply([SetOption("hp", "port", "9101")])
    assert link.is_symlink()
    assert "option port '9101'" in real.read_text()


def test_file_store_refuses_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "usbprintd"
    path.write_bytes(b"config printer 'p'\n\toption name 'caf\xe9'\n")
    with pytest.raises(UciError, match="not UTF-8"):
        FileStore(path).load()


def test_the_development_config_template_is_valid_uci() -> None:
    template = resources.files("usbprintd").joinpath("data/development.conf").read_text()
    text = template.format(printer_port=9100, web_port=8631, spool_dir="/tmp/spool",
                           firmware_dir="/tmp/firmware")
    sections = parse_sections(text)
    assert [(s.type, s.name) for s in sections] == [("usbprintd", "main"),
                                                    ("printer", "virtual")]


def test_the_shipped_default_config_is_valid_uci() -> None:
    shipped = Path(__file__).resolve().parents[2] / "files" / "etc" / "config" / "usbprintd"
    if not shipped.exists():
        pytest.skip(f"{shipped} is not part of this checkout")
    sections = FileStore(shipped).load()
    assert [(s.type, s.name) for s in sections][:1] == [("usbprintd", "main")]


# --- choosing a store ----------------------------------------------------------------------------


def test_open_store_uses_the_given_file() -> None:
    store = open_store("/tmp/some.conf")
    assert isinstance(store, FileStore) and store.path == "/tmp/some.conf"


def test_open_store_falls_back_to_the_etc_config_file_without_pyuci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uci", None)  # import uci -> ImportError
    store = open_store(None)
    assert isinstance(store, FileStore) and store.path == DEFAULT_CONFIG_PATH


def test_open_store_prefers_libuci_when_pyuci_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the choice is tested here; the module is a placeholder, PyUciStore's behaviour is
    # covered by the contract tests above where pyuci is really installed.
    placeholder = types.ModuleType("uci")
    placeholder.Uci = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uci", placeholder)
    store = open_store(None)
    assert isinstance(store, PyUciStore)
    assert store.package == "usbprintd" and store.description == "UCI package 'usbprintd'"


def test_pyuci_is_imported_only_when_the_libuci_store_is_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uci", None)
    assert FileStore("/tmp/x").description == "file /tmp/x"  # no pyuci needed for the rest
    with pytest.raises(ImportError):
        PyUciStore()


def test_open_store_ignores_an_unrelated_module_named_uci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uci", types.ModuleType("uci"))  # no Uci class in it
    store = open_store(None)
    assert isinstance(store, FileStore) and store.path == DEFAULT_CONFIG_PATH
