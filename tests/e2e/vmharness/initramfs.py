"""A tiny initramfs: static busybox, the virtio/9p modules and `init.sh`.

Written as an uncompressed newc cpio by hand, so building it needs neither root nor cpio, and
the guest spends no time decompressing it.
"""

from __future__ import annotations

import hashlib
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .kernel import BOOT_MODULES, KernelImage

BUSYBOX = Path("/bin/busybox")
INIT_SCRIPT = Path(__file__).with_name("init.sh")
PT_INTERP = 3


class InitramfsError(RuntimeError):
    """The initramfs cannot be built on this host."""


@dataclass
class CpioArchive:
    """newc ("070701") archive writer; entries are kept in memory (the archive is ~3 MB)."""

    chunks: list[bytes] = field(default_factory=list)
    inode: int = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.inode += 1
        self.chunks += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def getvalue(self) -> bytes:
        trailer = CpioArchive(inode=0)
        trailer._entry("TRAILER!!!", 0)
        return b"".join(self.chunks + trailer.chunks)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF without a program interpreter (runs with no libc around)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(
        struct.unpack_from("<I", data, phoff + index * phentsize)[0] != PT_INTERP
        for index in range(phnum)
    )


def build_initramfs(image: KernelImage) -> bytes:
    if not BUSYBOX.exists() or not is_static_elf(BUSYBOX):
        raise InitramfsError(f"{BUSYBOX} missing or not static: apt-get install busybox-static")
    archive = CpioArchive()
    for directory in ("bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "newroot"):
        archive.directory(directory)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.file("init", INIT_SCRIPT.read_bytes(), 0o755)
    modules = image.load_order(BOOT_MODULES)
    for module in modules:
        archive.file(f"lib/modules/{module.name}", module.read_bytes())
    archive.file("etc/modules.boot", "".join(f"{module.name}\n" for module in modules).encode())
    return archive.getvalue()


def prepare_initramfs(image: KernelImage) -> Path:
    """`initramfs-<hash>.cpio` next to the kernel, rebuilt when any input changes."""
    content = build_initramfs(image)
    digest = hashlib.sha256(content).hexdigest()[:16]
    target = image.root / f"initramfs-{digest}.cpio"
    if not target.exists():
        for stale in image.root.glob("initramfs-*.cpio"):
            stale.unlink()
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(content)
        temporary.rename(target)
    return target
