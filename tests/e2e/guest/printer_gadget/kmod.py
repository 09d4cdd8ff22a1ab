"""Load kernel modules from the trimmed tree the host prepared (the guest has no /lib/modules).

`finit_module(2)` through ctypes, dependencies from the tree's modules.dep: no kmod needed.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SYS_FINIT_MODULE = 313  # x86_64
E2E_DIR = Path(__file__).resolve().parents[2]


def modules_dir(release: str | None = None) -> Path:
    """Where the host's setup put this kernel's modules (tests/e2e/.cache/kernel/<release>)."""
    release = release or os.uname().release
    return E2E_DIR / ".cache" / "kernel" / release / "lib" / "modules" / release


def _name(path: str) -> str:
    return Path(path).name.removesuffix(".ko").replace("-", "_")


def read_dependencies(directory: Path) -> dict[str, list[str]]:
    """modules.dep as {name: [dependency paths relative to directory]}, plus the module itself."""
    table: dict[str, list[str]] = {}
    for line in (directory / "modules.dep").read_text().splitlines():
        module, _, dependencies = line.partition(":")
        table[_name(module)] = [*reversed(dependencies.split()), module]
    return table


def builtin_modules(directory: Path) -> set[str]:
    path = directory / "modules.builtin"
    return {_name(line) for line in path.read_text().split()} if path.exists() else set()


def is_loaded(name: str) -> bool:
    return Path("/sys/module", name).exists()


def finit_module(path: Path, params: str = "") -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.syscall(SYS_FINIT_MODULE, fd, params.encode(), 0) != 0:
            error = ctypes.get_errno()
            if error != errno.EEXIST:
                raise OSError(error, f"finit_module {path.name} {params!r}: {os.strerror(error)}")
    finally:
        os.close(fd)


def modprobe(name: str, params: str = "", directory: Path | None = None) -> None:
    """Load `name` and what it depends on; `params` apply to `name` only (like modprobe)."""
    directory = directory or modules_dir()
    dependencies = read_dependencies(directory)
    name = name.replace("-", "_")
    if name in builtin_modules(directory):
        return
    if name not in dependencies:
        raise FileNotFoundError(f"module {name} is not in {directory} (see vmharness/kernel.py)")
    for relative in dependencies[name]:
        module = _name(relative)
        if not is_loaded(module):
            log.debug("loading %s", relative)
            finit_module(directory / relative, params if module == name else "")
