#!/usr/bin/env python3
"""The install manifest: the files usbprintd puts on a router besides its Python package.

One list (openwrt-feed/net/usbprintd/install.manifest) is read by the feed recipe, which runs
`manifest.py install <project> <package root>` inside the OpenWrt build, and by the ipk builder,
so the two cannot drift apart. Standard library only: it runs on the build host's Python.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

FEED_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = FEED_DIR.parent
MANIFEST = FEED_DIR / "net" / "usbprintd" / "install.manifest"
KINDS = ("file", "conf", "tree")


class ManifestError(ValueError):
    """A line of the manifest cannot be understood; the message says which and why."""


@dataclass(frozen=True)
class Entry:
    kind: str  # file | conf | tree
    mode: int
    source: str  # relative to the project root
    destination: str  # absolute path on the router

    @property
    def target(self) -> PurePosixPath:
        return PurePosixPath(self.destination)


def parse_manifest(text: str, where: str = "manifest") -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 4:
            raise ManifestError(f"{where}:{number}: expected 'kind mode source destination'")
        kind, mode, source, destination = fields
        if kind == "dir":
            raise ManifestError(
                f"{where}:{number}: an empty directory cannot be shipped: the OpenWrt build "
                "deletes empty directories from Python packages; create it at run time")
        if kind not in KINDS:
            raise ManifestError(f"{where}:{number}: unknown kind '{kind}'")
        if not destination.startswith("/") or ".." in PurePosixPath(destination).parts:
            raise ManifestError(f"{where}:{number}: destination must be an absolute path")
        try:
            entries.append(Entry(kind, int(mode, 8), source, destination))
        except ValueError:
            raise ManifestError(f"{where}:{number}: mode '{mode}' is not octal") from None
    return entries


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    return parse_manifest(path.read_text(), str(path))


def conffiles(entries: Sequence[Entry]) -> list[str]:
    """The files the package manager keeps when the owner changed them."""
    return [e.destination for e in entries if e.kind == "conf"]


def _place(root: Path, destination: str) -> Path:
    path = root / destination.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _copy_file(source: Path, target: Path, mode: int) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, mode)


def install(entries: Sequence[Entry], project: Path, root: Path) -> list[Path]:
    """Install every entry below `root` (a package staging directory); returns the files."""
    installed: list[Path] = []
    for entry in entries:
        target = _place(root, entry.destination)
        source = project / entry.source
        if entry.kind == "tree":
            for path in sorted(source.rglob("*")):
                if "__pycache__" in path.parts:
                    continue
                destination = target / path.relative_to(source)
                if path.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    _copy_file(path, destination, entry.mode)
                    installed.append(destination)
        else:
            _copy_file(source, target, entry.mode)
            installed.append(target)
    return installed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_install = commands.add_parser("install", help="install the files below a root")
    run_install.add_argument("project", type=Path, help="the usbprintd source tree")
    run_install.add_argument("root", type=Path, help="package staging directory")
    commands.add_parser("conffiles", help="print the conffiles")
    args = parser.parse_args(argv)
    entries = read_manifest()
    if args.command == "install":
        for path in install(entries, args.project, args.root):
            print(f"installed /{path.relative_to(args.root)}")
    else:
        print("\n".join(conffiles(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
