"""A private network and mount namespace for a benchmark: its own loopback (ports 9100-9109
cannot collide with anything else on the machine) and its own /run/lock (p910nd's lock files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

NAMESPACE_MARK = "USBPRINTD_BENCH_NAMESPACE"


def enter_namespace(script: Path, argv: list[str]) -> int | None:
    """Outside: run `script argv` again inside `unshare --net --mount` and return its exit code.
    Inside (or where unshare is impossible): prepare the namespace and return None, meaning
    "carry on here"."""
    if os.environ.get(NAMESPACE_MARK):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "bench-lock", "/run/lock"],
                       check=True)
        return None
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("unshare unavailable (needs root): using the host's loopback", file=sys.stderr)
        return None
    command = ["unshare", "--net", "--mount", "--propagation", "private", "--",
               sys.executable, str(script.resolve()), *argv]
    return subprocess.call(command, env={**os.environ, NAMESPACE_MARK: "1"})
