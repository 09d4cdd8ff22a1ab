"""UCI configuration stores.

Two stores honour one contract: `FileStore` reads and writes the UCI text format itself (for
development machines, tests, and routers without the bindings), `PyUciStore` goes through the
pyuci bindings (libuci) on OpenWrt. Both read whole packages as a list of `UciSection` and write
by applying a list of `UciChange` operations, all or nothing.

The text format follows libuci: one statement per line (or several separated by `;`),
`config <type> ['<name>']`, `option <name> '<value>'`, `list <name> '<value>'`; arguments are
unquoted, 'single quoted' (no escapes, may span lines) or "double quoted" (backslash escapes),
pieces glue together ('it'\\''s'); a backslash outside single quotes keeps the next character
and joins lines before a line break; `#` starts a comment. An option set to '' does not exist,
as in libuci. Anonymous sections are named like `@printer[0]`, the index counting every section
of that type, as `uci show` does; such names are accepted wherever a section name is.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

OptionValue = str | list[str]

DEFAULT_CONFIG_PATH = "/etc/config/usbprintd"
DEFAULT_PACKAGE = "usbprintd"
NEW_FILE_MODE = 0o600  # libuci's mode for new packages; ours may hold a password hash


@dataclass
class UciSection:
    type: str
    name: str  # anonymous sections get a generated name such as "@printer[0]"
    options: dict[str, OptionValue] = field(default_factory=dict)
    anonymous: bool = False


@dataclass(frozen=True)
class SetOption:
    """Set an option ('' or [] deletes it, as in libuci); a list value writes `list` lines."""

    section: str
    option: str
    value: OptionValue


@dataclass(frozen=True)
class DeleteOption:
    """Remove an option; nothing happens if it (or its section) does not exist."""

    section: str
    option: str


@dataclass(frozen=True)
class AddSection:
    """Add a section at the end; name '' adds an anonymous one. Re-adding an existing section of
    the same type changes nothing; of another type it is an error."""

    type: str
    name: str


@dataclass(frozen=True)
class DeleteSection:
    """Remove a section and all its options; nothing happens if it does not exist."""

    name: str


UciChange = SetOption | DeleteOption | AddSection | DeleteSection


class UciError(Exception):
    """The configuration could not be read or written; the message says where and why."""


class ConfigStore(Protocol):
    """One UCI package (e.g. /etc/config/usbprintd)."""

    description: str

    def load(self) -> list[UciSection]: ...

    def apply(self, changes: list[UciChange]) -> None: ...


# --- names and values ----------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_EXTENDED_NAME = re.compile(r"@(.+)\[(-?[0-9]+)\]\Z")  # the type may hold brackets: "@]x[0]"
_LIBUCI_ANONYMOUS = re.compile(r"cfg[0-9a-f]{6}\Z")  # names libuci invents for anonymous sections


def check_name(name: str, what: str = "name") -> str:
    """Section and option names: letters, digits and _ only (libuci's rule, shell-safe)."""
    if not _NAME.match(name):
        raise UciError(f"invalid {what} '{name}': use only letters, digits and _")
    return name


def check_type(section_type: str) -> str:
    """Section types: printable ASCII without spaces (libuci's rule)."""
    if not section_type or any(not 33 <= ord(c) <= 126 for c in section_type):
        raise UciError(f"invalid section type '{section_type}': use printable characters, "
                       "no spaces")
    return section_type


def check_value(value: str, where: str) -> str:
    """libuci refuses line breaks and control characters (except tab) in values it writes."""
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise UciError(f"{where}: the value contains a line break or control character")
    return value


def quote(value: str) -> str:
    """UCI's own quoting: single quotes, an embedded ' written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def name_anonymous_sections(sections: Iterable[UciSection]) -> None:
    """Give anonymous sections their `@type[index]` names (index over all sections of the type)."""
    seen: dict[str, int] = {}
    for section in sections:
        index = seen.get(section.type, 0)
        seen[section.type] = index + 1
        if section.anonymous:
            section.name = f"@{section.type}[{index}]"


def find_section(names: Sequence[tuple[str, str]], wanted: str) -> int | None:
    """Index of a section in [(name, type), ...] by its name or an `@type[index]` reference."""
    if not wanted:
        return None
    match = _EXTENDED_NAME.match(wanted)
    if match:
        of_type = [i for i, (_, section_type) in enumerate(names) if section_type == match[1]]
        try:
            return of_type[int(match[2])]
        except IndexError:
            return None
    return next((i for i, (name, _) in enumerate(names) if name == wanted), None)


# --- the text format -----------------------------------------------------------------------------

_COMMANDS = {
    "package": "package", "p": "package",
    "config": "config", "c": "config",
    "option": "option", "o": "option",
    "list": "list", "l": "list",
}
_BLANK = " \t\r\f\v"


@dataclass
class _Statement:
    kind: str  # package | config | option | list
    args: tuple[str, ...]
    line: int = 0


@dataclass
class _Chunk:
    """One logical line of a file as written: its raw text and the statements on it."""

    text: str
    statements: list[_Statement]
    trailer: str = ""  # blanks and '# comment' after the last statement, kept when rewritten

    @property
    def indent(self) -> str:
        return self.text[: len(self.text) - len(self.text.lstrip(" \t"))]

    @property
    def newline(self) -> str:
        return "\r\n" if self.text.endswith("\r\n") else "\n"

    @property
    def blank(self) -> bool:
        return not self.text.strip()


class _Scanner:
    """Splits UCI text into logical lines and statements, with the quoting rules of libuci."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1

    def error(self, message: str, line: int | None = None) -> UciError:
        return UciError(f"{self.source}:{line or self.line}: {message}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.text[self.pos]
        self.pos += 1
        if char == "\n":
            self.line += 1
        return char

    def skip_blanks(self) -> None:
        while self.peek() and self.peek() in _BLANK:
            self.pos += 1

    def chunks(self) -> list[_Chunk]:
        result = []
        while self.pos < len(self.text):
            start = self.pos
            statements, trailer = self.logical_line()
            result.append(_Chunk(self.text[start:self.pos], statements, trailer))
        return result

    def logical_line(self) -> tuple[list[_Statement], str]:
        statements: list[_Statement] = []
        trailer = ""
        while True:
            mark = self.pos
            self.skip_blanks()
            char = self.peek()
            if char == "":
                return statements, trailer
            if char == "\n":
                self.take()
                return statements, trailer
            if char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
                trailer = self.text[mark:self.pos]
            elif char == ";":
                self.pos += 1
            else:
                statements.append(self.statement())

    def statement(self) -> _Statement:
        line, start = self.line, self.pos
        while self.peek() and self.peek() not in _BLANK + "\n;":
            self.pos += 1
        word = self.text[start:self.pos]
        kind = _COMMANDS.get(word)
        if kind is None:
            raise self.error(f"invalid command '{word}' (expected config, option or list)", line)
        args = []
        while True:
            mark = self.pos
            self.skip_blanks()
            if self.peek() in ("", "\n", "#", ";"):
                self.pos = mark
                return _Statement(kind, tuple(args), line)
            args.append(self.argument())

    def argument(self) -> str:
        pieces = []
        while True:
            char = self.peek()
            if char == "" or char in _BLANK or char in "\n;#":
                return "".join(pieces)
            if char in "'\"":
                pieces.append(self.quoted(char))
            elif char == "\\":
                pieces.append(self.escaped())
            else:
                pieces.append(self.take())

    def quoted(self, quote_char: str) -> str:
        opened = self.line
        self.pos += 1
        pieces = []
        while True:
            char = self.peek()
            if char == "":
                raise self.error(f"unterminated {quote_char} quote (the file ends inside it)",
                                 opened)
            if char == quote_char:
                self.pos += 1
                return "".join(pieces)
            if char == "\\" and quote_char == '"':
                pieces.append(self.escaped())
            else:
                pieces.append(self.take())

    def escaped(self) -> str:
        """A backslash keeps the next character as it is; before a line break it joins lines."""
        self.pos += 1
        if self.text.startswith("\r\n", self.pos):
            self.pos += 1
        if self.peek() == "":
            return ""
        char = self.take()
        return "" if char == "\n" else char


def _render(statement: _Statement) -> str:
    kind, args = statement.kind, statement.args
    if kind == "config":
        section_type = args[0] if _NAME.match(args[0]) else quote(args[0])
        return f"config {section_type}" + (f" {quote(args[1])}" if len(args) > 1 else "")
    if kind == "package":
        return f"package {quote(args[0])}"
    # 'option name' without a value reads as nothing, and is kept as it was
    return f"{kind} {args[0]}" + (f" {quote(args[1])}" if len(args) > 1 else "")


@dataclass
class _Model:
    """What the statements mean: the sections, and which section each statement belongs to."""

    sections: list[UciSection]
    owners: dict[tuple[int, int], int]  # (chunk index, statement index) -> section index

    def find(self, name: str) -> int | None:
        names = [("" if s.anonymous else s.name, s.type) for s in self.sections]
        return find_section(names, name)

    def statements_of(self, index: int) -> list[tuple[int, int]]:
        return [where for where, owner in self.owners.items() if owner == index]


def _expect_arguments(statement: _Statement, where: str, required: int, allowed: int) -> None:
    count = len(statement.args)
    if count < required:
        needed = "a type" if statement.kind == "config" else "a name"
        raise UciError(f"{where}: '{statement.kind}' needs {needed}")
    if count > allowed:
        raise UciError(f"{where}: too many arguments for '{statement.kind}' "
                       "(quote values that contain spaces)")


def _interpret(chunks: list[_Chunk], source: str) -> _Model:
    sections: list[UciSection] = []
    named: dict[str, int] = {}
    owners: dict[tuple[int, int], int] = {}
    current: int | None = None
    for ci, chunk in enumerate(chunks):
        for si, statement in enumerate(chunk.statements):
            where = f"{source}:{statement.line}"
            try:
                if statement.kind == "package":
                    _expect_arguments(statement, where, 1, 1)
                    continue
                if statement.kind == "config":
                    current = _open_section(statement, where, sections, named)
                elif current is None:
                    raise UciError(f"{where}: '{statement.kind}' before the first 'config' line")
                else:
                    _add_option(statement, where, sections[current])
            except UciError as err:
                message = str(err)
                raise UciError(message if message.startswith(where) else f"{where}: {message}"
                               ) from None
            owners[(ci, si)] = current
    name_anonymous_sections(sections)
    return _Model(sections, owners)


def _open_section(statement: _Statement, where: str, sections: list[UciSection],
                  named: dict[str, int]) -> int:
    _expect_arguments(statement, where, 1, 2)
    section_type = check_type(statement.args[0])
    name = statement.args[1] if len(statement.args) > 1 else ""
    if not name:
        sections.append(UciSection(section_type, "", {}, anonymous=True))
        return len(sections) - 1
    check_name(name, "section name")
    if name in named:  # libuci reopens a section declared twice
        index = named[name]
        if sections[index].type != section_type:
            raise UciError(f"section '{name}' was declared before with type "
                           f"'{sections[index].type}'")
        return index
    sections.append(UciSection(section_type, name, {}))
    named[name] = len(sections) - 1
    return named[name]


def _add_option(statement: _Statement, where: str, section: UciSection) -> None:
    _expect_arguments(statement, where, 1, 2)
    name = check_name(statement.args[0], "option name")
    value = statement.args[1] if len(statement.args) > 1 else ""
    if statement.kind == "option" and not value:
        return  # libuci ignores an empty option while reading (it neither adds nor removes)
    previous = section.options.pop(name, None)
    if statement.kind == "list":
        if previous is None:
            section.options[name] = [value]
        elif isinstance(previous, list):
            section.options[name] = [*previous, value]
        else:
            section.options[name] = [previous, value]
    else:
        section.options[name] = value


class UciDocument:
    """A UCI file as written. Edits rewrite only the lines they change, so comments, blank lines,
    ordering, formatting and everything this program does not know survive."""

    def __init__(self, text: str = "", source: str = "<text>") -> None:
        self.source = source
        self._load(text)

    @classmethod
    def from_sections(cls, sections: Iterable[UciSection], source: str = "<text>"
                      ) -> UciDocument:
        return cls(format_sections(sections), source)

    def _load(self, text: str) -> None:
        self._chunks = _Scanner(text, self.source).chunks()
        self._model = _interpret(self._chunks, self.source)

    @property
    def sections(self) -> list[UciSection]:
        return copy.deepcopy(self._model.sections)

    def text(self) -> str:
        return "".join(chunk.text for chunk in self._chunks)

    def apply(self, changes: Iterable[UciChange]) -> None:
        for change in changes:
            if isinstance(change, SetOption):
                self._set_option(change.section, change.option, change.value)
            elif isinstance(change, DeleteOption):
                self._delete_option(change.section, change.option)
            elif isinstance(change, AddSection):
                self._add_section(change.type, change.name)
            elif isinstance(change, DeleteSection):
                self._delete_section(change.name)
            else:
                raise UciError(f"unknown change {change!r}")

    # --- operations --------------------------------------------------------------------------

    def _require(self, section: str) -> int:
        index = self._model.find(section)
        if index is None:
            raise UciError(f"{self.source}: there is no section '{section}'")
        return index

    def _option_statements(self, index: int, option: str) -> list[tuple[int, int]]:
        return [(ci, si) for ci, si in self._model.statements_of(index)
                if self._chunks[ci].statements[si].kind in ("option", "list")
                and self._chunks[ci].statements[si].args[0] == option]

    def _set_option(self, section: str, option: str, value: OptionValue) -> None:
        index = self._require(section)
        check_name(option, "option name")
        where = f"{self.source}: {section}.{option}"
        if isinstance(value, str):
            new = [_Statement("option", (option, check_value(value, where)))] if value else []
        else:
            value = [check_value(item, where) for item in value]
            new = [_Statement("list", (option, item)) for item in value]
        current = self._model.sections[index].options.get(option)
        if current == value or (current is None and not new):
            return
        found = self._option_statements(index, option)
        if found:
            self._rewrite({where_: [] for where_ in found[1:]} | {found[0]: new})
        else:
            last_chunk = max(ci for ci, _ in self._model.statements_of(index))
            self._rewrite({}, after=(last_chunk, new))

    def _delete_option(self, section: str, option: str) -> None:
        index = self._model.find(section)
        if index is None or option not in self._model.sections[index].options:
            return
        self._rewrite({where: [] for where in self._option_statements(index, option)})

    def _add_section(self, section_type: str, name: str) -> None:
        check_type(section_type)
        if name:
            check_name(name, "section name")
            index = self._model.find(name)
            if index is not None:
                existing = self._model.sections[index].type
                if existing != section_type:
                    raise UciError(f"{self.source}: section '{name}' already exists with type "
                                   f"'{existing}'")
                return
        text = self.text()
        if text and not text.endswith("\n"):
            text += "\n"
        if text.strip() and not text.endswith("\n\n"):
            text += "\n"
        header = _Statement("config", (section_type, name) if name else (section_type,))
        self._load(text + _render(header) + "\n")

    def _delete_section(self, name: str) -> None:
        index = self._model.find(name)
        if index is None:
            return
        located = self._model.statements_of(index)
        first, last = located[0][0], located[-1][0]
        span = range(first, last + 1)
        if all(self._model.owners.get((ci, si)) == index
               for ci in span for si in range(len(self._chunks[ci].statements))):
            # one block: its inner comments go with it, plus the blank line that separated it
            before, after = self._chunks[:first], self._chunks[last + 1:]
            if (not before or before[-1].blank) and (not after or after[0].blank):
                if before:
                    before = before[:-1]
                elif after:
                    after = after[1:]
            self._load("".join(chunk.text for chunk in before + after))
        else:
            self._rewrite({where: [] for where in located})

    # --- rewriting ---------------------------------------------------------------------------

    def _rewrite(self, edits: dict[tuple[int, int], list[_Statement]],
                 after: tuple[int, list[_Statement]] | None = None) -> None:
        """Replace statements (an empty list removes one) and insert new ones after a chunk;
        untouched chunks keep their text byte for byte."""
        pieces = []
        for ci, chunk in enumerate(self._chunks):
            if any((ci, si) in edits for si in range(len(chunk.statements))):
                statements = [new for si, old in enumerate(chunk.statements)
                              for new in edits.get((ci, si), [old])]
                pieces.append(self._render_chunk(chunk, statements))
            else:
                pieces.append(chunk.text)
            if after is not None and after[0] == ci:
                if not pieces[-1].endswith("\n"):
                    # a backslash ending the file would join the new line to the old one
                    pieces[-1] += "\n\n" if pieces[-1].endswith("\\") else "\n"
                pieces.append(self._render_chunk(chunk, after[1], keep_trailer=False))
        self._load("".join(pieces))

    @staticmethod
    def _render_chunk(chunk: _Chunk, statements: list[_Statement],
                      keep_trailer: bool = True) -> str:
        option_indent = "\t"
        if chunk.statements and chunk.statements[0].kind in ("option", "list"):
            option_indent = chunk.indent or "\t"
        lines = [("" if s.kind in ("config", "package") else option_indent) + _render(s)
                 for s in statements]
        if lines and keep_trailer and chunk.trailer:
            lines[-1] += chunk.trailer
        return "".join(line + chunk.newline for line in lines)


def parse_sections(text: str, source: str = "<text>") -> list[UciSection]:
    """The sections of UCI text; errors name `source` and the line."""
    return UciDocument(text, source).sections


def format_sections(sections: Iterable[UciSection]) -> str:
    """UCI text for sections, in libuci's layout (anonymous sections written without a name)."""
    blocks = []
    for section in sections:
        header = (section.type,) if section.anonymous else (section.type, section.name)
        lines = [_render(_Statement("config", header))]
        for option, value in section.options.items():
            if isinstance(value, str):
                lines.append("\t" + _render(_Statement("option", (option, value))))
            else:
                lines += ["\t" + _render(_Statement("list", (option, item))) for item in value]
        blocks.append("".join(line + "\n" for line in lines))
    return "\n".join(blocks)


# --- the file store ------------------------------------------------------------------------------


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UciError(f"{path}: not UTF-8 text (byte {err.start})") from None


def _lock(handle, operation: int) -> None:
    """libuci's advisory lock; file systems without flock are read and written unlocked."""
    try:
        fcntl.flock(handle, operation)
    except OSError as err:
        log.debug("no lock on %s: %s", handle.name, err)


def _write_atomically(target: str, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Temp file in the same directory, fsync, rename over the target: readers and a power cut
    see the old file or the new one, never half of one."""
    directory = os.path.dirname(target) or "."
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(out.fileno(), *owner)
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FileStore:
    """A UCI file read and written directly. Uses libuci's flock convention (shared lock to
    read, exclusive lock on the file while rewriting it) so `uci` and LuCI see whole files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.description = f"file {self.path}"

    def load(self) -> list[UciSection]:
        try:
            with open(self.path, "rb") as handle:
                _lock(handle, fcntl.LOCK_SH)
                data = handle.read()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise UciError(f"{self.path}: cannot read: {err.strerror or err}") from err
        return parse_sections(_decode(data, self.path), self.path)

    def apply(self, changes: list[UciChange]) -> None:
        if not changes:
            return
        target = os.path.realpath(self.path)
        try:
            self._apply_locked(target, changes)
        except OSError as err:
            raise UciError(f"{self.path}: cannot write: {err.strerror or err}") from err

    def _apply_locked(self, target: str, changes: list[UciChange]) -> None:
        for _ in range(10):
            try:
                handle = open(target, "rb")  # noqa: SIM115 - held open for the lock
            except FileNotFoundError:
                self._rewrite(target, b"", changes, None)
                return
            with handle:
                _lock(handle, fcntl.LOCK_EX)
                if not self._still_current(target, handle.fileno()):
                    continue  # replaced while we waited for the lock: read the new file
                self._rewrite(target, handle.read(), changes, os.fstat(handle.fileno()))
                return
        raise UciError(f"{self.path}: the file keeps being replaced by another writer")

    @staticmethod
    def _still_current(target: str, fd: int) -> bool:
        try:
            return os.stat(target).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _rewrite(self, target: str, data: bytes, changes: list[UciChange],
                 old: os.stat_result | None) -> None:
        document = UciDocument(_decode(data, self.path), self.path)
        document.apply(changes)
        new = document.text().encode("utf-8")
        if new == data and (old is not None or not new):
            return
        mode = stat.S_IMODE(old.st_mode) if old else NEW_FILE_MODE
        owner = (old.st_uid, old.st_gid) if old else None
        _write_atomically(target, new, mode, owner)


# --- the libuci store ----------------------------------------------------------------------------


class PyUciStore:
    """A UCI package through libuci (pyuci's `uci` module), as LuCI and the `uci` tool use it:
    libuci's locking and its atomic commit.

    Pending changes live in a private directory for each call (as LuCI keeps one per session):
    the store sees committed configuration only, like init scripts do, and never commits what
    another program left pending. libuci rewrites the whole file on commit, so comments and
    formatting are not kept (the same as `uci commit`). Anonymous sections are recognised by the
    names libuci invents for them (cfgXXXXXX).
    """

    def __init__(self, package: str = DEFAULT_PACKAGE, confdir: str | None = None,
                 savedir: str | None = None) -> None:
        import uci as pyuci  # only on OpenWrt (python3-uci); ImportError elsewhere

        if not hasattr(pyuci, "Uci"):  # PyPI's unrelated 'uci' package takes the same name
            raise ImportError(f"module 'uci' ({getattr(pyuci, '__file__', '?')}) is not pyuci")
        self._uci = pyuci
        self.package = package
        self.confdir = confdir
        self.savedir = savedir
        self.description = f"UCI package '{package}'" + (f" in {confdir}" if confdir else "")

    @contextlib.contextmanager
    def _savedir(self):  # -> Iterator[str]
        if self.savedir:
            yield self.savedir
            return
        with tempfile.TemporaryDirectory(prefix="usbprintd-uci-") as private:
            yield private

    def _context(self, savedir: str):  # -> uci.Uci
        options = {"savedir": savedir}
        if self.confdir:
            options["confdir"] = self.confdir
        return self._uci.Uci(**options)

    def _path(self, context) -> str:
        return os.path.join(context.confdir(), self.package)

    def load(self) -> list[UciSection]:
        with self._savedir() as savedir:
            return [section for _, section in self._read(self._context(savedir))]

    def _read(self, context) -> list[tuple[str, UciSection]]:
        """(libuci's section name, section) in file order."""
        try:
            package = context.get_all(self.package)
            entries = [(name, UciSection(context.get(self.package, name), name,
                                         {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in options.items()},
                                         anonymous=bool(_LIBUCI_ANONYMOUS.match(name))))
                       for name, options in package.items()]
        except self._uci.UciExceptionNotFound:
            return []
        except self._uci.UciException as err:
            raise self._explain(context, err) from err
        name_anonymous_sections(section for _, section in entries)
        return entries

    def _explain(self, context, err: Exception) -> UciError:
        """pyuci reports parse errors without a message; our parser says where and why."""
        path = self._path(context)
        try:
            with open(path, "rb") as handle:
                parse_sections(_decode(handle.read(), path), path)
        except (UciError, OSError) as ours:
            return ours if isinstance(ours, UciError) else UciError(f"{path}: {ours}")
        return UciError(f"{path}: libuci could not read it ({type(err).__name__}: {err})")

    def apply(self, changes: list[UciChange]) -> None:
        if not changes:
            return
        with self._savedir() as savedir:
            context = self._context(savedir)
            entries = self._read(context)
            current = [section for _, section in entries]
            expected = UciDocument.from_sections(current, self.description)
            expected.apply(changes)  # validates every change before libuci sees any of them
            if expected.sections == current:
                return
            self._ensure_file(context)
            names = [(name, section.type) for name, section in entries]
            try:
                context = self._apply_all(context, savedir, names, changes)
                context.commit(self.package)
            except self._uci.UciException as err:
                with contextlib.suppress(self._uci.UciException):
                    context.revert(self.package)
                raise UciError(f"{self.description}: {err}") from err
            self._verify(self._context(savedir), expected.sections)

    def _ensure_file(self, context) -> None:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self._path(context), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             NEW_FILE_MODE))

    def _apply_all(self, context, savedir: str, names: list[tuple[str, str]],
                   changes: list[UciChange]):  # -> uci.Uci
        """Apply the changes; returns the context that holds them all, ready to commit."""
        for change in changes:
            if isinstance(change, AddSection) and not change.name:
                # pyuci's add() loads the package itself and fails where it is loaded already:
                # hand the pending changes over through the save directory, add in a fresh
                # context, and continue in another fresh one that reads them all back.
                context.save(self.package)
                names.append((self._context(savedir).add(self.package, change.type),
                              change.type))
                context = self._context(savedir)
            else:
                self._apply_one(context, names, change)
        return context

    def _apply_one(self, context, names: list[tuple[str, str]], change: UciChange) -> None:
        package = self.package
        if isinstance(change, AddSection):
            if find_section(names, change.name) is None:
                context.set(package, change.name, change.type)
                names.append((change.name, change.type))
            return
        name = change.name if isinstance(change, DeleteSection) else change.section
        index = find_section(names, name)
        if index is None:
            return  # deleting something absent (setting into it was refused by validation)
        real = names[index][0]
        if isinstance(change, DeleteSection):
            context.delete(package, real)
            del names[index]
        elif isinstance(change, DeleteOption):
            context.delete(package, real, change.option)
        elif isinstance(change.value, str):
            context.set(package, real, change.option, change.value)
        else:
            context.set(package, real, change.option, tuple(change.value))

    def _verify(self, context, expected: list[UciSection]) -> None:
        """pyuci ignores libuci's commit errors; re-reading is how a failed write is noticed."""
        written = [section for _, section in self._read(context)]
        if written != expected:
            raise UciError(f"{self.description}: the package does not hold the new values after "
                           "commit (libuci could not write it, or another program changed it "
                           "at the same time)")


def open_store(path: str | None) -> ConfigStore:
    """The store the daemon and the CLI use: the given file; else libuci's 'usbprintd' package
    when pyuci is installed (OpenWrt); else the file /etc/config/usbprintd."""
    if path:
        return FileStore(path)
    try:
        return PyUciStore(DEFAULT_PACKAGE)
    except ImportError:
        log.debug("pyuci is not installed; using %s directly", DEFAULT_CONFIG_PATH)
        return FileStore(DEFAULT_CONFIG_PATH)
