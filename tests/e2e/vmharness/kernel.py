"""Debian's kernel for the guest, fetched with apt and trimmed to what the tests load.

The package is downloaded (never installed), streamed once through `dpkg-deb --fsys-tarfile`,
and only the wanted modules plus their dependency closure are written; `vmlinuz` is
decompressed to an ELF `vmlinux` because QEMU boots that directly through the PVH entry point,
which saves the ~4 s an XZ bzImage costs to decompress under TCG.  Result: a ~70 MB cache
instead of the 400 MB package tree.
"""

from __future__ import annotations

import json
import logging
import lzma
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Loaded by the initramfs: the 9p root filesystem and an entropy source.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_rng")
# Loaded by the guest tests from the extracted tree.
USB_MODULES = ("configfs", "dummy_hcd", "libcomposite", "usb_f_printer", "usb_f_fs", "usblp")
# Bump when the cache layout or the module selection logic changes.
CACHE_FORMAT = 1

VMLINUZ_XZ_MAGIC = b"\xfd7zXZ\x00"


class KernelSetupError(RuntimeError):
    """The kernel could not be resolved, downloaded or unpacked."""


@dataclass(frozen=True)
class KernelImage:
    """A prepared kernel: boot image, trimmed module tree and its dependency map."""

    kver: str
    root: Path

    @property
    def vmlinux(self) -> Path:
        return self.root / "vmlinux"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.kver

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())

    def load_order(self, names: Iterable[str]) -> list[Path]:
        """Module files for `names` and their dependencies, dependencies first."""
        manifest = self.manifest()
        return [
            self.modules_dir / manifest["paths"][name]
            for name in dependency_order(names, manifest["depends"])
        ]


def module_name(filename: str) -> str:
    """Kernel module name for a file name (`usb-common.ko` -> `usb_common`)."""
    return filename.removesuffix(".ko").replace("-", "_")


def dependency_order(names: Iterable[str], depends: dict[str, list[str]]) -> list[str]:
    """Depth-first closure of `names` over `depends`, each module after its dependencies."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise KernelSetupError(f"module dependency cycle through {name}")
        if name not in depends:
            raise KernelSetupError(f"module {name} is not in the kernel package")
        visiting.add(name)
        for dependency in depends[name]:
            visit(dependency)
        visiting.discard(name)
        ordered.append(name)

    for name in names:
        visit(module_name(name))
    return ordered


def modinfo(elf: bytes) -> dict[str, str]:
    """The `.modinfo` section of a 64-bit little-endian module as a dict (last key wins)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise KernelSetupError("not a 64-bit little-endian ELF module")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", elf, shoff + index * shentsize
        )
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = elf.index(b"\0", names_offset + name)
        if elf[names_offset + name:end] == b".modinfo":
            fields = elf[offset:offset + size].split(b"\0")
            pairs = (field.decode(errors="replace").partition("=") for field in fields if field)
            return {key: value for key, _, value in pairs}
    return {}


def resolve_kver(requested: str = "auto") -> str:
    """The ABI name (`6.1.0-56-amd64`) of the kernel `linux-image-amd64` currently depends on."""
    if requested != "auto":
        return requested
    result = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        kind, _, package = line.strip().partition(": ")
        if kind == "Depends" and package.startswith("linux-image-") and package[12:13].isdigit():
            return package.removeprefix("linux-image-")
    raise KernelSetupError(
        f"apt-cache depends linux-image-amd64 named no kernel ABI: {result.stderr.strip()}"
    )


def download(kver: str, directory: Path) -> Path:
    """`apt-get download linux-image-KVER` into `directory`."""
    return download_package(f"linux-image-{kver}", directory)


def download_package(package: str, directory: Path) -> Path:
    """`apt-get download PACKAGE` into `directory`; one `apt-get update` retry as root."""
    for attempt in range(2):
        result = subprocess.run(
            ["apt-get", "download", "-q", package], cwd=directory, capture_output=True, text=True,
            check=False,
        )
        debs = sorted(directory.glob(f"{package}_*.deb"))
        if result.returncode == 0 and debs:
            return debs[-1]
        if attempt == 0 and os.geteuid() == 0:
            log.info("apt-get download failed, refreshing package lists")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
    raise KernelSetupError(f"apt-get download {package} failed: {result.stderr.strip()}")


def package_members(deb: Path) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """Stream the data members of a .deb without unpacking it to disk."""
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert dpkg.stdout is not None
    finished = False
    try:
        with tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar:
            for member in tar:
                yield member.name.removeprefix("./"), tar, member
        while dpkg.stdout.read(1 << 16):  # the tar padding after the end-of-archive blocks
            pass
        finished = True
    finally:
        if not finished:  # the consumer stopped early: dpkg-deb would block on a full pipe
            dpkg.kill()
        dpkg.stdout.close()
        dpkg.wait()
    if dpkg.returncode != 0:
        raise KernelSetupError(f"dpkg-deb --fsys-tarfile {deb} failed ({dpkg.returncode})")


def decompress_vmlinuz(bzimage: bytes) -> bytes:
    start = bzimage.find(VMLINUZ_XZ_MAGIC)
    if start < 0:
        raise KernelSetupError("vmlinuz holds no XZ stream (not a Debian amd64 kernel?)")
    return lzma.LZMADecompressor().decompress(bzimage[start:])


@dataclass
class _Unpacked:
    depends: dict[str, list[str]]
    paths: dict[str, str]
    blobs: dict[str, bytes]


def _unpack(deb: Path, kver: str, staging: Path, wanted: Iterable[str]) -> _Unpacked:
    """One pass over the package: vmlinux and index files to `staging`, every module's deps.

    Module contents are kept in memory only for the wanted names; their dependencies are
    known only at the end, so a second pass picks up any that were not kept.
    """
    wanted = {module_name(name) for name in wanted}
    moddir = f"lib/modules/{kver}/"
    unpacked = _Unpacked({}, {}, {})
    for name, tar, member in package_members(deb):
        if name == f"boot/vmlinuz-{kver}":
            (staging / "vmlinux").write_bytes(decompress_vmlinuz(_read(tar, member)))
        elif name in (moddir + "modules.builtin", moddir + "modules.order"):
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_read(tar, member))
        elif name.startswith(moddir) and name.endswith(".ko") and member.isfile():
            blob = _read(tar, member)
            modname = module_name(Path(name).name)
            depends = modinfo(blob).get("depends", "")
            unpacked.depends[modname] = [module_name(dep) for dep in depends.split(",") if dep]
            unpacked.paths[modname] = name.removeprefix(moddir)
            if modname in wanted:
                unpacked.blobs[modname] = blob
    return unpacked


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    if stream is None:
        raise KernelSetupError(f"{member.name} is not a regular file")
    return stream.read()


def _write_modules(deb: Path, kver: str, staging: Path, names: Iterable[str]) -> dict:
    unpacked = _unpack(deb, kver, staging, names)
    if not (staging / "vmlinux").exists():
        raise KernelSetupError(f"the package has no boot/vmlinuz-{kver}")
    needed = dependency_order(names, unpacked.depends)
    missing = set(needed) - unpacked.blobs.keys()
    if missing:
        # Dependencies of the wanted modules: a second, targeted pass.
        paths = {unpacked.paths[name]: name for name in missing}
        moddir = f"lib/modules/{kver}/"
        for name, tar, member in package_members(deb):
            relative = name.removeprefix(moddir)
            if relative in paths:
                unpacked.blobs[paths[relative]] = _read(tar, member)
    modules_dir = staging / "lib" / "modules" / kver
    for name in needed:
        target = modules_dir / unpacked.paths[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(unpacked.blobs[name])
    return {
        "format": CACHE_FORMAT,
        "kver": kver,
        "requested": sorted(module_name(name) for name in names),
        "depends": {name: unpacked.depends[name] for name in needed},
        "paths": {name: unpacked.paths[name] for name in needed},
    }


def run_depmod(root: Path, kver: str) -> None:
    """modules.dep & co. for the trimmed tree (Debian ships none; they are made at install)."""
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    command = [depmod, "-b", str(root), kver] if depmod else ["busybox", "depmod", "-b", str(root)]
    subprocess.run(command, check=True, capture_output=True)


def _is_current(image: KernelImage, names: list[str]) -> bool:
    try:
        manifest = image.manifest()
    except (OSError, ValueError):
        return False
    return (
        manifest.get("format") == CACHE_FORMAT
        and manifest.get("requested") == sorted(module_name(name) for name in names)
        and image.vmlinux.exists()
        and (image.modules_dir / "modules.dep").exists()
    )


def cached_kernels(cache_dir: Path) -> list[str]:
    kernels = cache_dir / "kernel"
    if not kernels.is_dir():
        return []
    return sorted(entry.name for entry in kernels.iterdir() if (entry / "manifest.json").exists())


def prepare_kernel(cache_dir: Path, kver: str = "auto") -> KernelImage:
    """The cached kernel for `kver`, fetched and trimmed first if needed (idempotent)."""
    names = [*BOOT_MODULES, *USB_MODULES]
    try:
        kver = resolve_kver(kver)
    except KernelSetupError:
        cached = cached_kernels(cache_dir)
        if kver != "auto" or not cached:
            raise
        kver = cached[-1]
        log.warning("apt-cache could not resolve the kernel; using cached %s", kver)
    image = KernelImage(kver, cache_dir / "kernel" / kver)
    if _is_current(image, names):
        return image
    log.info("preparing kernel %s in %s", kver, image.root)
    image.root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="download-") as scratch:
        deb = download(kver, Path(scratch))
        staging = Path(scratch) / "tree"
        staging.mkdir()
        manifest = _write_modules(deb, kver, staging, names)
        deb.unlink()
        run_depmod(staging, kver)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        shutil.rmtree(image.root, ignore_errors=True)
        staging.rename(image.root)
    _prune_other_kernels(cache_dir, keep=kver)
    return image


def _prune_other_kernels(cache_dir: Path, keep: str) -> None:
    """Superseded ABIs are removed from the mirror anyway; keep the cache to one kernel."""
    for entry in (cache_dir / "kernel").iterdir():
        if entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
