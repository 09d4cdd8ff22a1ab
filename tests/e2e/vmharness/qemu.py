"""Boot the cached kernel under QEMU/TCG and collect what the guest wrote to the results share.

Three 9p shares: the host root (read-only; the guest runs the host's python3 and the project's
.venv from it), the project (read-only, mounted at its host path so a clone under /tmp, which
the guest hides behind a tmpfs, still works) and a per-run results directory (read-write).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .initramfs import prepare_initramfs
from .kernel import KernelImage, prepare_kernel
from .udev import prepare_udev

log = logging.getLogger(__name__)

E2E_DIR = Path(__file__).resolve().parents[1]
PROJECT = E2E_DIR.parents[1]
CACHE_DIR = E2E_DIR / ".cache"
RUNS_KEPT = 5
QEMU = "qemu-system-x86_64"
KERNEL_LOG_ALARMS = ("BUG:", "kernel BUG", "Oops", "WARNING:", "soft lockup", "Call Trace")


class GuestError(RuntimeError):
    """QEMU could not be started or the guest did not finish."""


@dataclass(frozen=True)
class MachineSpec:
    memory: str = "256M"
    timeout: float = 300.0  # whole boot-to-poweroff budget
    kver: str = "auto"


@dataclass
class GuestRun:
    """The files one boot left behind, plus what the host measured."""

    results_dir: Path
    wall_seconds: float
    qemu_returncode: int | None
    timed_out: bool

    def _text(self, name: str) -> str:
        path = self.results_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def console(self) -> str:
        return self._text("console.log")

    @property
    def dmesg(self) -> str:
        return self._text("dmesg.txt")

    @property
    def pytest_log(self) -> str:
        return self._text("pytest.log")

    @property
    def pytest_returncode(self) -> int | None:
        text = self._text("pytest.rc").strip()
        return int(text) if text else None

    def reports(self) -> list[dict]:
        """Test phase reports written by the guest's conftest, in the order they happened."""
        return [json.loads(line) for line in self._text("results.jsonl").splitlines() if line]

    def guest_uptime(self, marker: str) -> float | None:
        text = self._text(f"{marker}.uptime").strip()
        return float(text) if text else None

    def kernel_alarms(self) -> list[str]:
        """Kernel log lines that mean the kernel itself went wrong (P3 and friends).

        The serial console is searched too: a guest that locked up never saves dmesg, but
        warnings and BUGs reach the console (loglevel=4) as they happen.
        """
        lines = dict.fromkeys(self.dmesg.splitlines() + self.console.splitlines())
        return [line for line in lines if any(alarm in line for alarm in KERNEL_LOG_ALARMS)]

    def describe_failure(self, lines: int = 40) -> str:
        """What to show when the guest produced no usable result."""
        state = "timed out" if self.timed_out else f"qemu exited {self.qemu_returncode}"
        tail = "\n".join(self.console.splitlines()[-lines:])
        pytest_tail = "\n".join(self.pytest_log.splitlines()[-lines:])
        return (f"guest run {state} after {self.wall_seconds:.1f} s; files in {self.results_dir}\n"
                f"--- console (tail) ---\n{tail}\n--- guest pytest (tail) ---\n{pytest_tail}")


def check_host() -> None:
    if shutil.which(QEMU) is None:
        raise GuestError(f"{QEMU} not found: apt-get install qemu-system-x86 (make test-deps)")
    if any(char in str(PROJECT) for char in " ,\t\n"):
        raise GuestError(f"the project path {PROJECT} must not contain spaces or commas")


def prepare(spec: MachineSpec = MachineSpec()) -> tuple[KernelImage, Path]:
    """Kernel and initramfs, from the cache when they are current."""
    check_host()
    CACHE_DIR.mkdir(exist_ok=True)
    with (CACHE_DIR / "setup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs share one cache
        image = prepare_kernel(CACHE_DIR, spec.kver)
        prepare_udev(CACHE_DIR)
        return image, prepare_initramfs(image)


def new_results_dir() -> Path:
    """A fresh results directory; older ones beyond the last few are removed."""
    runs = CACHE_DIR / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    existing = sorted(runs.iterdir(), key=lambda entry: entry.stat().st_mtime)
    for stale in existing[:max(0, len(existing) - RUNS_KEPT + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))


def qemu_command(image: KernelImage, initramfs: Path, results_dir: Path, spec: MachineSpec,
                 mode: str, console: list[str]) -> list[str]:
    append = (f"console=ttyS0 loglevel=4 panic=-1 e2e.project={PROJECT} e2e.mode={mode} "
              f"e2e.timeout={int(spec.timeout)}")
    shares = (("/", "hostroot", True), (PROJECT, "project", True), (results_dir, "results", False))
    virtfs = []
    for path, tag, readonly in shares:
        option = f"local,path={path},mount_tag={tag},security_model=none,multidevs=remap"
        virtfs += ["-virtfs", option + (",readonly=on" if readonly else "")]
    return [
        QEMU, "-accel", "tcg", "-cpu", "max", "-m", spec.memory, "-smp", "1",
        "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none", *console,
        "-kernel", str(image.vmlinux), "-initrd", str(initramfs), "-append", append,
        "-device", "virtio-rng-pci", *virtfs,
    ]


def run_guest_pytest(pytest_args: list[str], spec: MachineSpec = MachineSpec(),
                     results_dir: Path | None = None) -> GuestRun:
    """One boot: pytest with `pytest_args` (relative to the project) runs in the guest."""
    image, initramfs = prepare(spec)
    results_dir = results_dir or new_results_dir()
    (results_dir / "request.json").write_text(json.dumps({"pytest_args": pytest_args}))
    console = ["-serial", f"file:{results_dir / 'console.log'}"]
    command = qemu_command(image, initramfs, results_dir, spec, "pytest", console)
    log.info("booting %s: %s", image.kver, " ".join(command))
    started = time.monotonic()
    timed_out = False
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as qemu:
        try:
            output, _ = qemu.communicate(timeout=spec.timeout + 30)
        except subprocess.TimeoutExpired:
            timed_out = True
            qemu.kill()
            output, _ = qemu.communicate()
        except BaseException:
            qemu.kill()
            raise
    (results_dir / "qemu.log").write_bytes(output)
    return GuestRun(results_dir, time.monotonic() - started, qemu.returncode, timed_out)


def run_shell(spec: MachineSpec = MachineSpec()) -> int:
    """An interactive root shell in the guest on this terminal; `exit` powers the guest off."""
    image, initramfs = prepare(spec)
    results_dir = new_results_dir()
    console = ["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"]
    command = qemu_command(image, initramfs, results_dir, spec, "shell", console)
    print(f"results share: {results_dir} (guest: /run/e2e)", flush=True)
    tty = os.isatty(0)
    saved = subprocess.run(["stty", "-g"], capture_output=True, text=True).stdout if tty else ""
    try:
        return subprocess.run(command, check=False).returncode
    finally:
        if saved:
            subprocess.run(["stty", saved.strip()], check=False)
