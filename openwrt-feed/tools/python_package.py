"""The project's Python package as the OpenWrt SDK build puts it into site-packages.

The feed recipe copies the files its Build/Prepare names into the build directory, builds a
wheel from them (Py3Build: `python -m build --wheel --no-isolation`), installs that wheel with
`python -m installer` and ships what landed in site-packages: the package and its
`<name>-<version>.dist-info`. The same steps here, without the `build` and `installer` tools:

1. `copy_sources` copies what Build/Prepare copies (minus byte-code and old egg-info, which
   the recipe deletes too);
2. `build_wheel` calls the project's PEP 517 backend in place, as `--no-isolation` does, with
   the running interpreter or, when that lacks the backend's requirements (a venv without
   `wheel`), the interpreter that venv was made from;
3. `install_wheel` unpacks a pure wheel into site-packages as `installer` does for the files
   the SDK package keeps. The one difference: `installer` also writes the console scripts it
   generates into /usr/bin and names them in RECORD; the SDK package ships neither (its
   /usr/bin/usbprintd comes from the install manifest), so here RECORD is the wheel's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

# What the recipe's Build/Prepare leaves out of the build directory, or Py3Build never reads.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
# The wheel's own directories for files outside site-packages; the SDK package ships none.
SITE_PACKAGES_SCHEMES = ("purelib", "platlib")


class WheelError(RuntimeError):
    """The wheel cannot be built or installed the way the SDK build would; the message says
    why and what to do."""


def copy_sources(project: Path, names: Sequence[str], destination: Path) -> None:
    """Copy each of `names` (relative to `project`), as Build/Prepare copies them."""
    if not names:
        raise WheelError("the recipe's Build/Prepare copies no project files")
    destination.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = project / name
        target = destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


# Runs in the build interpreter: checks the backend's requirements by distribution name, then
# builds. The result goes to a file, since backends print their progress on stdout.
_BUILD_SCRIPT = """
import importlib, importlib.metadata, json, re, sys
backend_name, requires, out_dir, result_file = json.loads(sys.argv[1])

def missing(requirements):
    names = (re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requirements)
    absent = []
    for name in names:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(name)
    return absent

absent = missing(requires)
if not absent:
    module, _, attribute = backend_name.partition(":")
    backend = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        backend = getattr(backend, part)
    hook = getattr(backend, "get_requires_for_build_wheel", None)
    absent = missing(hook() if hook else [])
if absent:
    result = {"missing": absent}
else:
    result = {"wheel": backend.build_wheel(out_dir)}
with open(result_file, "w") as handle:
    json.dump(result, handle)
"""


def build_interpreters() -> list[str]:
    """This interpreter, then the one its venv was made from (which sees the distribution's
    packages, such as Debian's python3-setuptools and python3-wheel)."""
    base = getattr(sys, "_base_executable", sys.executable)
    return list(dict.fromkeys([sys.executable, base]))


def build_wheel(source_dir: Path, out_dir: Path, interpreters: Sequence[str]) -> Path:
    """Build the wheel of the project in `source_dir` with the first interpreter that has the
    build backend's requirements installed."""
    build_system = tomllib.loads((source_dir / "pyproject.toml").read_text())["build-system"]
    backend = build_system.get("build-backend", "setuptools.build_meta:__legacy__")
    requires = build_system.get("requires", [])
    out_dir.mkdir(parents=True, exist_ok=True)
    lacking: dict[str, list[str]] = {}
    for python in interpreters:
        with tempfile.TemporaryDirectory(prefix="usbprintd-wheel-") as scratch:
            result_file = Path(scratch) / "result.json"
            arguments = json.dumps([backend, requires, str(out_dir), str(result_file)])
            run = subprocess.run([python, "-I", "-c", _BUILD_SCRIPT, arguments],
                                 cwd=source_dir, capture_output=True, text=True)
            if run.returncode != 0 or not result_file.exists():
                raise WheelError(f"{python}: building the wheel failed:\n{run.stderr}")
            result = json.loads(result_file.read_text())
        if "wheel" in result:
            return out_dir / result["wheel"]
        lacking[python] = result["missing"]
    details = "; ".join(f"{python} lacks {', '.join(names)}" for python, names in lacking.items())
    raise WheelError(f"no interpreter can build the wheel ({details}): install the build "
                     f"requirements (Debian: apt-get install python3-setuptools python3-wheel)")


def _dist_info_dir(archive: zipfile.ZipFile) -> str:
    tops = {PurePosixPath(name).parts[0] for name in archive.namelist()}
    dist_infos = [top for top in tops if top.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise WheelError(f"expected one .dist-info directory, found {sorted(dist_infos)}")
    return dist_infos[0]


def _site_packages_name(name: str) -> str | None:
    """Where a wheel member goes below site-packages, or None when it goes elsewhere."""
    parts = PurePosixPath(name).parts
    if ".." in parts or PurePosixPath(name).is_absolute():
        raise WheelError(f"wheel member '{name}' points outside the installation")
    if not parts[0].endswith(".data"):
        return name
    if len(parts) > 2 and parts[1] in SITE_PACKAGES_SCHEMES:
        return str(PurePosixPath(*parts[2:]))
    return None


def install_wheel(wheel: Path, site_packages: Path) -> list[Path]:
    """Unpack a pure wheel into `site_packages`; returns the files written."""
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as archive:
        wheel_metadata = archive.read(f"{_dist_info_dir(archive)}/WHEEL").decode()
        if "Root-Is-Purelib: true" not in wheel_metadata:
            raise WheelError(f"{wheel.name} is not a pure-Python wheel; the package is "
                             "architecture-independent (PKGARCH:=all)")
        for member in archive.infolist():
            name = None if member.is_dir() else _site_packages_name(member.filename)
            if name is None:
                continue
            target = site_packages / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            os.chmod(target, 0o644)
            written.append(target)
    return written
