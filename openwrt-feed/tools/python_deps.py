#!/usr/bin/env python3
"""Which OpenWrt python3-* packages a Python code base needs, derived from its imports.

OpenWrt splits the standard library: python3-light carries most of it, and modules such as
logging, asyncio, email, urllib or ctypes come in packages of their own. A recipe that forgets
one installs fine and fails at run time on the router; this derives the list so it cannot drift:

1. every `import` in the code is collected from its syntax tree (imports inside functions too,
   since lazily imported features are still features);
2. the standard-library ones are imported in a clean interpreter, and every module that pulls in
   is mapped to its OpenWrt package: `import asyncio` needs python3-logging as well;
3. third-party imports must be known (`THIRD_PARTY`): required ones map to their package,
   optional ones (the code copes without them) to nothing.

`python_deps.py check RECIPE PACKAGE PATH...` compares the python3-* entries of the package's
DEPENDS with the derived list. The split modelled is that of the 24.10 and 25.12 release feeds.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recipe import read_recipe

LIGHT = "python3-light"

# Top-level standard-library modules that live outside python3-light.
STDLIB_PACKAGES: dict[str, str] = {
    "asyncio": "python3-asyncio",
    "cgi": "python3-cgi",
    "cgitb": "python3-cgitb",
    "unicodedata": "python3-codecs",
    "ctypes": "python3-ctypes",
    "_ctypes": "python3-ctypes",
    "dbm": "python3-dbm",
    "_dbm": "python3-dbm",
    "_gdbm": "python3-dbm",
    "decimal": "python3-decimal",
    "_decimal": "python3-decimal",
    "distutils": "python3-distutils",
    "email": "python3-email",
    "lib2to3": "python3-lib2to3",
    "logging": "python3-logging",
    "lzma": "python3-lzma",
    "_lzma": "python3-lzma",
    "multiprocessing": "python3-multiprocessing",
    "_multiprocessing": "python3-multiprocessing",
    "curses": "python3-ncurses",
    "_curses": "python3-ncurses",
    "_curses_panel": "python3-ncurses",
    "ssl": "python3-openssl",
    "_ssl": "python3-openssl",
    "_hashlib": "python3-openssl",
    "doctest": "python3-pydoc",
    "pydoc": "python3-pydoc",
    "pydoc_data": "python3-pydoc",
    "readline": "python3-readline",
    "sqlite3": "python3-sqlite3",
    "_sqlite3": "python3-sqlite3",
    "unittest": "python3-unittest",
    "urllib": "python3-urllib",
    "uuid": "python3-uuid",
    "_uuid": "python3-uuid",
    "venv": "python3-venv",
    "ensurepip": "python3-venv",
    "webbrowser": "python3-webbrowser",
    "xml": "python3-xml",
    "xmlrpc": "python3-xml",
    "pyexpat": "python3-xml",
    "_elementtree": "python3-xml",
}
STDLIB_PREFIXES = {"_codecs_": "python3-codecs"}  # the CJK codecs

# Imported by the standard library only when present, with a fallback: hashlib works without
# OpenSSL for the common digests; asyncio, http.client and urllib.request work without ssl;
# shutil, tarfile and zipfile without lzma.
OPTIONAL_IN_STDLIB = ("ssl", "_ssl", "_hashlib", "lzma", "_lzma")
# Functions that exist only when hashlib is backed by OpenSSL (from Python 3.12 for pbkdf2).
OPENSSL_HASHLIB_FUNCTIONS = frozenset({"pbkdf2_hmac", "scrypt"})


@dataclass(frozen=True)
class ThirdParty:
    package: str
    required: bool


THIRD_PARTY: dict[str, ThirdParty] = {
    "bottle": ThirdParty("python3-bottle", required=True),
    "pyudev": ThirdParty("python3-pyudev", required=True),
    "usb": ThirdParty("python3-pyusb", required=True),
    # The code copes without ubus, but the default web login (auth 'rpcd') then falls back to
    # uhttpd's /ubus, which only a LuCI installation provides (uhttpd-mod-ubus) and which
    # fails once uhttpd redirects to HTTPS: the package needs it.
    "ubus": ThirdParty("python3-ubus", required=True),
    # optional: the code checks for them and works without
    "zeroconf": ThirdParty("python3-zeroconf", required=False),
    "uci": ThirdParty("python3-uci", required=False),
    "euci": ThirdParty("python3-uci", required=False),
}


_THIRD_PARTY_PACKAGES = frozenset(t.package for t in THIRD_PARTY.values())


@dataclass
class Imports:
    modules: set[str] = field(default_factory=set)  # dotted names as imported
    openssl_hash_functions: set[str] = field(default_factory=set)

    @property
    def top_level(self) -> set[str]:
        return {name.split(".")[0] for name in self.modules}


def collect_imports(paths: Iterable[Path], own_packages: Iterable[str] = (),
                    module_level_only: bool = False) -> Imports:
    """Absolute imports of every .py file under `paths`, minus the code's own packages.

    `module_level_only` keeps just what importing the code always executes: not the bodies of
    functions, nor `try` blocks that fall back when an import fails (a third-party library's
    optional extras)."""
    own = set(own_packages)
    found = Imports()
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            tree = ast.parse(file.read_text(), str(file))
            nodes = _module_level(tree.body) if module_level_only else ast.walk(tree)
            for node in nodes:
                _record(node, found)
    found.modules = {m for m in found.modules if m.split(".")[0] not in own}
    return found


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _guards_imports(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
            return True
    return False


def _module_level(statements: list[ast.stmt]) -> Iterable[ast.stmt]:
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(statement, ast.Try) and _guards_imports(statement):
            yield from _module_level(statement.orelse + statement.finalbody)
            continue
        yield statement
        for block in _blocks(statement):
            yield from _module_level(block)


def _blocks(statement: ast.stmt) -> Iterable[list[ast.stmt]]:
    """The statement lists nested in a compound statement (if, for, with, class, try...)."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(statement, name, None)
        if isinstance(block, list) and all(isinstance(s, ast.stmt) for s in block):
            yield block
    for handler in getattr(statement, "handlers", None) or []:
        yield handler.body
    for case in getattr(statement, "cases", None) or []:
        yield case.body


def _record(node: ast.AST, found: Imports) -> None:
    if isinstance(node, ast.Import):
        found.modules.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "__future__":
            return
        found.modules.add(node.module)
        if node.module == "hashlib":
            found.openssl_hash_functions.update(
                a.name for a in node.names if a.name in OPENSSL_HASHLIB_FUNCTIONS)
    elif (isinstance(node, ast.Attribute) and node.attr in OPENSSL_HASHLIB_FUNCTIONS
          and isinstance(node.value, ast.Name) and node.value.id == "hashlib"):
        found.openssl_hash_functions.add(node.attr)


_CLOSURE_SCRIPT = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
before = set(sys.modules)
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def stdlib_closure(modules: Iterable[str], python: str = sys.executable) -> set[str]:
    """Every module that importing `modules` loads, in an isolated interpreter (-I -S: no site,
    no user paths) with the optional OpenSSL modules marked absent."""
    wanted = sorted(m for m in modules if m.split(".")[0] not in OPTIONAL_IN_STDLIB)
    result = subprocess.run(
        [python, "-I", "-S", "-c", _CLOSURE_SCRIPT, json.dumps(OPTIONAL_IN_STDLIB),
         json.dumps(wanted)],
        capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout)) | set(modules)


def stdlib_package(module: str) -> str:
    top = module.split(".")[0]
    if top in STDLIB_PACKAGES:
        return STDLIB_PACKAGES[top]
    for prefix, package in STDLIB_PREFIXES.items():
        if top.startswith(prefix):
            return package
    return LIGHT


@dataclass(frozen=True)
class Needs:
    packages: frozenset[str]  # every python3-* package to depend on, python3-light included
    optional: frozenset[str]  # packages of optional imports (not to be hard dependencies)
    unknown: frozenset[str]  # third-party imports nobody classified: an error


def required_packages(paths: Sequence[Path], own_packages: Iterable[str] = (),
                      python: str = sys.executable, module_level_only: bool = False) -> Needs:
    imports = collect_imports(paths, own_packages, module_level_only)
    stdlib = {m for m in imports.modules if m.split(".")[0] in sys.stdlib_module_names}
    packages = {LIGHT} | {stdlib_package(m) for m in stdlib_closure(stdlib, python)}
    if imports.openssl_hash_functions:
        packages.add("python3-openssl")
    optional: set[str] = set()
    unknown: set[str] = set()
    for top in imports.top_level - sys.stdlib_module_names:
        known = THIRD_PARTY.get(top)
        if known is None:
            unknown.add(top)
        elif known.required:
            packages.add(known.package)
        else:
            optional.add(known.package)
    return Needs(frozenset(packages), frozenset(optional - packages), frozenset(unknown))


def compare(needs: Needs, depends: Iterable[str]) -> list[str]:
    """Problems with a DEPENDS list (empty when it is exactly right)."""
    declared = {d for d in depends if d.startswith("python3-")}
    problems = [f"unknown third-party import '{name}': add it to THIRD_PARTY"
                for name in sorted(needs.unknown)]
    problems += [f"missing +{name}" for name in sorted(needs.packages - declared)]
    problems += [f"+{name} is not needed by any import" for name in
                 sorted(declared - needs.packages - needs.optional)]
    problems += [f"+{name} is optional for the code: do not make it a hard dependency"
                 for name in sorted(declared & needs.optional)]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the derived python3-* packages")
    check = commands.add_parser("check", help="compare a recipe's DEPENDS with the imports")
    check.add_argument("recipe", type=Path)
    check.add_argument("package")
    for command in (show, check):
        command.add_argument("paths", type=Path, nargs="+")
        command.add_argument("--own", action="append", default=[],
                             help="top-level package of the code itself (not a dependency)")
        command.add_argument("--library", action="store_true",
                             help="a third-party library: count only imports that always run, "
                                  "and only standard-library ones")
    args = parser.parse_args(argv)
    needs = required_packages(args.paths, args.own, module_level_only=args.library)
    if args.library:
        needs = Needs(frozenset(p for p in needs.packages if p not in _THIRD_PARTY_PACKAGES),
                      frozenset(), frozenset())
    if args.command == "show":
        print(" ".join(f"+{p}" for p in sorted(needs.packages)))
        if needs.unknown:
            print(f"unknown imports: {', '.join(sorted(needs.unknown))}", file=sys.stderr)
        return 1 if needs.unknown else 0
    depends = read_recipe(args.recipe).package(args.package).depends
    problems = compare(needs, depends)
    for problem in problems:
        print(f"{args.recipe} Package/{args.package}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
