"""Run the real daemon as a child process and talk to it with real clients."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True if a TCP connect succeeds (the connection is closed without sending anything)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class DaemonProcess:
    """`usbprintd run --config FILE` with its stderr captured to a file."""

    def __init__(self, workdir: Path, config_text: str, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.config_path = workdir / "usbprintd.conf"
        self.log_path = workdir / "daemon.log"
        self.config_path.write_text(config_text)
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "usbprintd", "run", "--config", str(self.config_path),
             "--log-level", "debug", "--timestamps"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        wait_for(lambda: "usbprintd starting" in self.log(), timeout=15)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        """Wait until `pattern` (a regex) matched `count` times; returns the last match's line."""
        regex = re.compile(pattern)

        def matched() -> str | None:
            lines = [line for line in self.log().splitlines() if regex.search(line)]
            return lines[-1] if len(lines) >= count else None

        return wait_for(matched, timeout)

    def write_config(self, text: str) -> None:
        self.config_path.write_text(text)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def reload(self) -> None:
        self.signal(signal.SIGHUP)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def fd_count(self) -> int:
        """Open file descriptors of the daemon right now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        """Resident memory of the daemon right now (VmRSS), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def launch(daemons: list[DaemonProcess], workdir: Path, config_text: str) -> DaemonProcess:
    """Start a daemon with `config_text`, remembered in `daemons` (the fixture stops them)."""
    daemon = DaemonProcess(workdir, config_text).start()
    daemons.append(daemon)
    return daemon


def printer_section(name: str, device: str | Path, port: int, **options: str) -> str:
    lines = [f"config printer '{name}'", "\toption enabled '1'", f"\toption name '{name}'",
             f"\toption device '{device}'", f"\toption port '{port}'"]
    options.setdefault("bind", "127.0.0.1")
    lines += [f"\toption {key} '{value}'" for key, value in options.items()]
    return "\n".join(lines) + "\n\n"


def global_section(**options: str) -> str:
    defaults = {"web_port": "0", "mdns": "0", "autoadd": "0", "queue_limit": "8",
                "idle_timeout": "300", "drain_grace": "0.5"}
    defaults.update(options)
    return "config usbprintd 'main'\n" + "".join(
        f"\toption {key} '{value}'\n" for key, value in defaults.items()
    ) + "\n"


def send_with_nc(port: int, data: bytes, host: str = "127.0.0.1", timeout: float = 30) -> bytes:
    """A job the way a shell user sends one: `nc -N host port < file`."""
    result = subprocess.run(["nc", "-N", host, str(port)], input=data, capture_output=True,
                            timeout=timeout, check=True)
    return result.stdout


def job_of(client_port: int) -> str:
    """Regex prefix of the log lines about the job of the client with local port `client_port`
    (job numbers depend on every connection the daemon saw, including port probes)."""
    return rf"job \d+ from 127\.0\.0\.1:{client_port} "


def send_job(port: int, data: bytes, host: str = "127.0.0.1", timeout: float = 30) -> bytes:
    """A job from a plain Python client: send, half-close, read the back-channel until the
    server closes. Returns the back-channel bytes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = read_until_closed(sock, timeout)
        # The server has closed too: dropping the socket without a linger keeps thousands of
        # jobs from filling the port range with TIME_WAIT entries.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return reply


@contextlib.contextmanager
def connected(port: int, host: str = "127.0.0.1"):
    sock = socket.create_connection((host, port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
