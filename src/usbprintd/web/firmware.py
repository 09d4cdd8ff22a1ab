"""Firmware blobs in firmware_dir: list, store (size-limited, atomic) and delete.

The blobs are HP's and never shipped; the owner uploads them through the page. Names are
reduced to a plain safe file name, so nothing can be written outside firmware_dir, and a blob
appears under its final name only once it is complete (temporary file + rename in the same
directory).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_FIRMWARE_BYTES = 4 * 1024 * 1024
MAX_NAME_LENGTH = 64
COPY_CHUNK = 64 * 1024
TEMP_PREFIX = ".upload-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FirmwareError(Exception):
    """A request the store refuses; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def safe_name(name: str) -> str:
    """A plain file name made of letters, digits, '.', '_' and '-', never hidden or a path.

    Only the last path component of what the browser sent counts; anything else is replaced.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    if not cleaned or cleaned.strip("._-") == "" or len(cleaned) > MAX_NAME_LENGTH:
        raise FirmwareError(f"'{name}' is not usable as a firmware file name")
    return cleaned


@dataclass(frozen=True)
class Blob:
    name: str
    size: int
    modified: float


class FirmwareStore:
    def __init__(self, directory: str | Path, max_bytes: int = MAX_FIRMWARE_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def blobs(self) -> list[Blob]:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as err:  # a file where the directory should be, no permission, ...
            raise FirmwareError(f"the firmware directory {self.directory} cannot be read: "
                                f"{err.strerror or err}", 503) from None
        result = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            result.append(Blob(entry.name, info.st_size, info.st_mtime))
        return sorted(result, key=lambda blob: blob.name.lower())

    def _path(self, name: str) -> Path:
        return self.directory / safe_name(name)

    def save(self, name: str, source: BinaryIO, length: int) -> Blob:
        """Store `length` bytes from `source` as `name` (replacing an older blob)."""
        target = self._path(name)
        if length > self.max_bytes:
            raise FirmwareError(f"a firmware file may have at most {self.max_bytes} bytes", 413)
        if length <= 0:
            raise FirmwareError("the file is empty")
        if target.is_dir() and not target.is_symlink():
            raise FirmwareError(f"'{target.name}' is a directory in the firmware directory; "
                                "it is not replaced", 409)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = _temp_file(self.directory)
        try:
            with os.fdopen(fd, "wb") as temp:
                _copy_exactly(source, temp, length)
                temp.flush()
                os.fsync(temp.fileno())
            os.chmod(temp_name, 0o644)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _sync_directory(self.directory)
        info = target.stat()
        return Blob(target.name, info.st_size, info.st_mtime)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            if not path.is_file() or path.is_symlink():
                raise FileNotFoundError(path)
            path.unlink()
        except FileNotFoundError:
            raise FirmwareError(f"no firmware file '{path.name}'", 404) from None


def _temp_file(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)


def _copy_exactly(source: BinaryIO, target: BinaryIO, length: int) -> None:
    remaining = length
    while remaining:
        chunk = source.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise FirmwareError("the upload ended early")
        target.write(chunk)
        remaining -= len(chunk)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def known_models() -> list[dict[str, str]]:
    """The printers that need a firmware blob (the USB layer's table, when it is built in)."""
    try:
        from usbprintd.usb.firmware import FIRMWARE_MODELS
    except ImportError:
        return []
    return [{"model": m.model, "usb_id": m.usb_id, "file": m.blob} for m in FIRMWARE_MODELS]
