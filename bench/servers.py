"""The two servers under comparison, started the same way: foreground, loopback, given sinks.

usbprintd serves every printer from one process; p910nd needs one process per port (9100+digit).
Both are stopped strictly by the PIDs recorded here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import listening_ports

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
P910ND_LOCK_DIR = Path("/var/lock/p910nd")
P910ND_BASE_PORT = 9100
START_TIMEOUT = 20.0
WEB_START_TIMEOUT = 5.0  # after the print ports are up


class ServerError(RuntimeError):
    """A server did not start; the message carries the tail of its log."""


@dataclass(frozen=True)
class Printer:
    sink: str  # device path: /dev/null, a FIFO, a directory
    port: int  # 9100..9109 so that p910nd can serve it too

    @property
    def digit(self) -> int:
        if not P910ND_BASE_PORT <= self.port <= P910ND_BASE_PORT + 9:
            raise ValueError(f"p910nd serves only ports 9100-9109, not {self.port}")
        return self.port - P910ND_BASE_PORT


def find_p910nd() -> str | None:
    return shutil.which("p910nd") or next(
        (p for p in ("/usr/sbin/p910nd", "/sbin/p910nd") if os.access(p, os.X_OK)), None)


def ensure_p910nd() -> str:
    """Debian's p910nd, installed with apt when missing (needs root and the network)."""
    found = find_p910nd()
    if found:
        return found
    print("p910nd missing: installing it with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "p910nd"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = find_p910nd()
    if not found:
        raise ServerError("p910nd is still not installed")
    return found


def _log_tail(log: Path, lines: int = 15) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_listening(ports: set[int], processes: list[subprocess.Popen[bytes]], log: Path,
                    timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ports <= listening_ports():
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"exited with {dead[0].returncode}" if dead else "timed out"
            raise ServerError(f"{log.stem}: {why} before listening on {sorted(ports)}\n"
                              f"{_log_tail(log)}")
        time.sleep(0.02)


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """Common life cycle: start(printers), pids, pid_for(printer), stop()."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.by_port: dict[int, subprocess.Popen[bytes]] = {}
        self.log_path = workdir / f"{self.name}.log"
        self._log = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def pid_for(self, printer: Printer) -> int:
        return self.by_port[printer.port].pid

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_log(self):
        self._log = self.log_path.open("ab")
        return self._log

    def stop(self) -> None:
        for process in self.processes:
            _terminate(process)
        self.processes.clear()
        self.by_port.clear()
        if self._log is not None:
            self._log.close()
            self._log = None


class Usbprintd(Server):
    name = "usbprintd"

    def __init__(self, workdir: Path, python_args: tuple[str, ...] = ()) -> None:
        super().__init__(workdir)
        self.python_args = python_args  # e.g. ("-m", "cProfile", "-o", FILE) for profiling

    def start(self, printers: list[Printer], web_port: int = 0) -> Usbprintd:
        config = self.workdir / "usbprintd.conf"
        config.write_text(usbprintd_config(printers, web_port))
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"),
                                                           os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen(
            [sys.executable, *self.python_args, "-m", "usbprintd", "run", "--config",
             str(config)],
            stdin=subprocess.DEVNULL, stdout=self._open_log(), stderr=subprocess.STDOUT,
            cwd=self.workdir, env=env,
        )
        self.processes.append(process)
        self.by_port = {printer.port: process for printer in printers}
        try:
            _wait_listening({p.port for p in printers}, self.processes, self.log_path)
            if web_port:
                _wait_listening({web_port}, self.processes, self.log_path, WEB_START_TIMEOUT)
        except ServerError:
            self.stop()
            raise
        return self


def usbprintd_config(printers: list[Printer], web_port: int = 0) -> str:
    """A config equivalent to the p910nd command lines: unidirectional, loopback, no mDNS.
    The queue is deep enough for the queued-clients figure (50 clients over 8 printers)."""
    lines = [
        "config usbprintd 'main'",
        "\toption autoadd '0'",
        "\toption mdns '0'",
        "\toption queue_limit '8'",
        "\toption web_listen '127.0.0.1'",
        f"\toption web_port '{web_port}'",
        "\toption auth 'none'",
        "\toption log_level 'info'",
        "",
    ]
    for index, printer in enumerate(printers):
        lines += [
            f"config printer 'bench{index}'",
            "\toption enabled '1'",
            f"\toption name 'Bench printer {index}'",
            f"\toption device '{printer.sink}'",
            f"\toption port '{printer.port}'",
            f"\toption bind '{HOST}'",
            "\toption bidirectional '0'",
            "\toption mdns '0'",
            "",
        ]
    return "\n".join(lines)


class P910nd(Server):
    name = "p910nd"

    def __init__(self, workdir: Path, binary: str) -> None:
        super().__init__(workdir)
        self.binary = binary

    def start(self, printers: list[Printer], web_port: int = 0) -> P910nd:
        if web_port:
            raise ValueError("p910nd has no web page")
        P910ND_LOCK_DIR.mkdir(parents=True, exist_ok=True)  # Debian's build needs it
        log = self._open_log()
        for printer in printers:
            # -d: foreground, log to stdout; -i: bind address; -f: device; digit: 9100+digit
            process = subprocess.Popen(
                [self.binary, "-d", "-i", HOST, "-f", printer.sink, str(printer.digit)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
            self.processes.append(process)
            self.by_port[printer.port] = process
        self.digits = [p.digit for p in printers]
        try:
            _wait_listening({p.port for p in printers}, self.processes, self.log_path)
        except ServerError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        for digit in getattr(self, "digits", []):
            for leftover in (P910ND_LOCK_DIR / f"p910{digit}d", Path(f"/run/p910{digit}d.pid")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        self.digits = []
