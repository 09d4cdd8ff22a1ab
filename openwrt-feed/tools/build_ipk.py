#!/usr/bin/env python3
"""Build usbprintd_<version>_all.ipk for OpenWrt 24.10 (opkg) without an OpenWrt SDK.

The archive has the layout opkg expects and the OpenWrt build produces: a gzip'd tar holding
debian-binary, data.tar.gz and control.tar.gz. Its contents follow the feed recipe
(openwrt-feed/net/usbprintd/Makefile): version, release and Depends are read from it, the files
come from the shared install manifest, and the Python package is the project's wheel built from
the files the recipe's Build/Prepare copies and installed into /usr/lib/python3.11/site-packages
with its dist-info, shipped as byte-code only, as Py3Package does (python_package.py). Standard
library only, plus the project's build backend (setuptools and wheel) in this interpreter or the
one its venv was made from; run it with the router's Python version (3.11 for 24.10) so the
byte-code matches, otherwise sources are shipped. The SDK build (docs/openwrt.md) remains the
way to produce apk packages for 25.12.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import py_compile
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from manifest import PROJECT_DIR, conffiles, install, read_manifest
from python_package import WheelError, build_interpreters, build_wheel, copy_sources, install_wheel
from recipe import read_recipe

RECIPE = PROJECT_DIR / "openwrt-feed" / "net" / "usbprintd" / "Makefile"
PACKAGE = "usbprintd"
SOURCE_VARIABLE = "USBPRINTD_SOURCE"  # the recipe's name for the project directory
TARGET_PYTHON = "3.11"  # OpenWrt 24.10

# What OpenWrt's package build writes for every package: the real work is done by
# default_postinst/default_prerm from base-files' /lib/functions.sh, which (unless IPKG_INSTROOT
# is set, i.e. inside an image build) runs the uci-defaults scripts and enables and starts the
# init script; in an image build it only enables it.
POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
"""
PRERM = """#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
"""


@dataclass(frozen=True)
class BuildInfo:
    version: str  # opkg version: <PKG_VERSION>-<PKG_RELEASE>
    depends: tuple[str, ...]
    section: str
    license: str
    title: str
    description: str
    conffiles: tuple[str, ...]
    sources: tuple[str, ...]  # what Build/Prepare copies from the project to build the wheel
    epoch: int


def site_packages(python_version: str) -> str:
    return f"usr/lib/python{python_version}/site-packages"


def source_date_epoch(project: Path) -> int:
    """Reproducible timestamps: SOURCE_DATE_EPOCH, else the newest source file's time."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    newest = max(p.stat().st_mtime for p in (project / "src").rglob("*") if p.is_file())
    return int(newest)


def read_build_info(project: Path, recipe_path: Path) -> BuildInfo:
    recipe = read_recipe(recipe_path)
    package = recipe.package(PACKAGE)
    entries = read_manifest()
    if set(package.conffiles) != set(conffiles(entries)):
        raise SystemExit(f"{recipe_path}: conffiles {package.conffiles} differ from the "
                         f"manifest's {conffiles(entries)}")
    return BuildInfo(
        version=f"{recipe.version}-{recipe.release}",
        depends=package.depends,
        section=package.variables.get("SECTION", "net"),
        license=recipe.variables.get("PKG_LICENSE", ""),
        title=package.variables.get("TITLE", PACKAGE),
        description=package.description,
        conffiles=tuple(conffiles(entries)),
        sources=recipe.prepared_sources(SOURCE_VARIABLE),
        epoch=source_date_epoch(project),
    )


def stage_python_package(project: Path, root: Path, info: BuildInfo, python_version: str,
                         interpreters: Sequence[str]) -> None:
    """The project's wheel installed into site-packages, then byte-code only when this
    interpreter is the target's version (as Py3Package ships it), else the sources."""
    site = root / site_packages(python_version)
    with tempfile.TemporaryDirectory(prefix="usbprintd-build-") as temporary:
        build_dir = Path(temporary)
        copy_sources(project, info.sources, build_dir / "source")
        wheel = build_wheel(build_dir / "source", build_dir / "dist", interpreters)
        install_wheel(wheel, site)
    compile_sources(site, python_version)


def compile_sources(site: Path, python_version: str) -> None:
    """Every .py below `site` becomes a .pyc beside it (compileall -b, as Py3Package runs it)
    and the source goes, unless this interpreter is not the target's version."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python_version:
        print(f"warning: Python {python_version} is the target but this is "
              f"{sys.version_info.major}.{sys.version_info.minor}: shipping sources",
              file=sys.stderr)
        return
    for source in sorted(site.rglob("*.py")):
        compiled = source.with_suffix(".pyc")
        py_compile.compile(
            str(source), cfile=str(compiled),
            dfile=f"/{site_packages(python_version)}/{source.relative_to(site)}", doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        os.chmod(compiled, 0o644)
        source.unlink()


def delete_empty_directories(root: Path) -> None:
    """Remove every empty directory below `root`, deepest first, as the SDK build does after
    Py3Package/<pkg>/install (Python3/DeleteEmptyDirs: `find -mindepth 1 -empty -type d
    -delete`): a directory only the ipk kept would be missing where the SDK's package is used."""
    for current, _, _ in os.walk(root, topdown=False):
        directory = Path(current)
        if directory != root and not any(directory.iterdir()):
            directory.rmdir()


def installed_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def control_text(info: BuildInfo, size: int) -> str:
    description = info.title
    if info.description:
        description += "\n" + "\n".join(f" {line.strip() or '.'}"
                                         for line in info.description.splitlines())
    fields = [
        ("Package", PACKAGE),
        ("Version", info.version),
        ("Depends", ", ".join(info.depends)),
        ("Source", "feeds/usbprintd/net/usbprintd"),
        ("SourceName", PACKAGE),
        ("License", info.license),
        ("Section", info.section),
        ("SourceDateEpoch", str(info.epoch)),
        ("Architecture", "all"),
        ("Installed-Size", str(size)),
        ("Description", description),
    ]
    return "".join(f"{key}: {value}\n" for key, value in fields if value)


def _tar_entries(root: Path) -> Iterator[Path]:
    yield root
    yield from sorted(root.rglob("*"))


def tar_gz(members: Sequence[tuple[str, Path]] | Path, epoch: int) -> bytes:
    """A reproducible tar.gz: root-owned entries, fixed times, sorted, gzip without a name."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive:
        if isinstance(members, Path):
            members = [("./" + str(p.relative_to(members)) if p != members else ".", p)
                       for p in _tar_entries(members)]
        for name, path in members:
            entry = archive.gettarinfo(str(path), arcname=name)
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = "root"
            entry.mtime = epoch
            if entry.isfile():
                with path.open("rb") as handle:
                    archive.addfile(entry, handle)
            else:
                archive.addfile(entry)
    return buffer.getvalue()


def build(project: Path = PROJECT_DIR, out_dir: Path | None = None,
          python_version: str = TARGET_PYTHON, recipe: Path = RECIPE,
          interpreters: Sequence[str] | None = None) -> Path:
    info = read_build_info(project, recipe)
    out_dir = out_dir or project / "build"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="usbprintd-ipk-") as temporary:
        work = Path(temporary)
        data_root, control_root = work / "data", work / "control"
        data_root.mkdir()
        control_root.mkdir()
        stage_python_package(project, data_root, info, python_version,
                             interpreters or build_interpreters())
        install(read_manifest(), project, data_root)
        delete_empty_directories(data_root)
        for directory in [data_root, *data_root.rglob("*")]:
            if directory.is_dir():
                os.chmod(directory, 0o755)

        (control_root / "control").write_text(control_text(info, installed_size(data_root)))
        (control_root / "conffiles").write_text("".join(f"{c}\n" for c in info.conffiles))
        for name, text in (("postinst", POSTINST), ("prerm", PRERM)):
            (control_root / name).write_text(text)
            os.chmod(control_root / name, 0o755)
        for name in ("control", "conffiles"):
            os.chmod(control_root / name, 0o644)

        (work / "debian-binary").write_text("2.0\n")
        (work / "data.tar.gz").write_bytes(tar_gz(data_root, info.epoch))
        (work / "control.tar.gz").write_bytes(tar_gz(control_root, info.epoch))
        package = out_dir / f"{PACKAGE}_{info.version}_all.ipk"
        members = [(f"./{name}", work / name)
                   for name in ("debian-binary", "data.tar.gz", "control.tar.gz")]
        package.write_bytes(tar_gz(members, info.epoch))
    return package


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "build",
                        help="output directory (default: build/)")
    parser.add_argument("--python-version", default=TARGET_PYTHON,
                        help=f"the router's Python (default {TARGET_PYTHON}, OpenWrt 24.10)")
    parser.add_argument("--build-python", action="append", metavar="PYTHON",
                        help="interpreter to build the wheel with (default: this one, else the "
                             "one its venv was made from); repeat to try several in order")
    args = parser.parse_args(argv)
    try:
        package = build(out_dir=args.out, python_version=args.python_version,
                        interpreters=args.build_python)
    except WheelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
