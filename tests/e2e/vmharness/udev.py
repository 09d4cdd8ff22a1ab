"""systemd-udevd for the guest, from Debian's `udev` package extracted (never installed).

The guest tests that prove the daemon follows udev's rebroadcast events (as on a desktop) run
`udevadm` under the name `systemd-udevd` from this tree."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from .kernel import KernelSetupError, download_package

log = logging.getLogger(__name__)


def prepare_udev(cache_dir: Path) -> Path:
    """The extracted udev tree in `cache_dir/udev-root`, downloaded on first use."""
    root = cache_dir / "udev-root"
    if (root / "bin" / "udevadm").exists():
        return root
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        deb = download_package("udev", Path(scratch))
        staging = Path(scratch) / "root"
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KernelSetupError(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()}")
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
    log.info("extracted udev into %s", root)
    return root
