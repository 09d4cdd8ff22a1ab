"""`make run`, i.e. `usbprintd dev --state-dir DIR`, run as a developer runs it: the venv's console
script as a child process, a job sent with `nc -N`, the web page logged into with curl.

`dev` starts from fixed ports (9100 for the virtual printer, 8631 for the web page), so every
run here gets a network namespace of its own (loopback only): it never meets other tests or a
developer's own `make run`, and a test decides exactly which of those ports are taken. Clients
reach it with `ip netns exec`. Needs root (network namespaces), as `make test` has.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_process import wait_for

USBPRINTD = Path(sys.executable).parent / "usbprintd"  # the console script `make run` uses
FIRST_PRINTER_PORT, FIRST_WEB_PORT = 9100, 8631
SERVING = re.compile(r"serving 'Virtual printer' \((?P<spool>\S+)\) on 127\.0\.0\.1:(?P<port>\d+)")
WEB_URL = re.compile(r"web page: (?P<url>http://127\.0\.0\.1:(?P<port>\d+)/)")
PASSWORD = re.compile(r"web page password \(shown once, kept in (?P<file>\S+)\): (?P<password>\S+)")


@dataclass
class Namespace:
    """A network namespace with only a loopback interface, up."""

    name: str

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*argv), capture_output=True, timeout=30, **kwargs)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


@pytest.fixture
def netns() -> Iterator[Namespace]:
    name = f"usbprintd-dev-{secrets.token_hex(4)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace (needs root): {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield Namespace(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class DevRun:
    """One `usbprintd dev --state-dir DIR` process in `netns`, its output in a log file."""

    def __init__(self, netns: Namespace, state_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            # `ip netns exec` execs the command: this PID is the daemon's.
            self.process = subprocess.Popen(
                netns.command(str(USBPRINTD), "dev", "--state-dir", str(state_dir)),
                stdout=log, stderr=subprocess.STDOUT, cwd=state_dir.parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> re.Match[str]:
        """Waits until the web page is up (the last part to start); returns its log line."""
        def ready() -> re.Match[str] | None:
            assert self.process.poll() is None, f"usbprintd dev exited:\n{self.log()}"
            return WEB_URL.search(self.log())
        return wait_for(ready, timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def dev_runs() -> Iterator[list[DevRun]]:
    """The runs a test started; each is stopped (by its PID) at the end."""
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        run.stop()


@pytest.fixture
def start_dev(netns: Namespace, dev_runs: list[DevRun], tmp_path: Path):
    """Starts `usbprintd dev --state-dir <tmp>/state` and waits until it is ready."""
    def start(log_name: str = "dev.log") -> DevRun:
        run = DevRun(netns, tmp_path / "state", tmp_path / log_name)
        dev_runs.append(run)
        run.wait_ready()
        return run
    return start


def login(netns: Namespace, url: str, password: str) -> tuple[int, dict]:
    """POST /api/login with curl in the namespace: (HTTP status, JSON reply)."""
    body = json.dumps({"username": "", "password": password})
    result = netns.run("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H",
                       "Content-Type: application/json", "--data", body, f"{url}api/login",
                       check=True, text=True)
    reply, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(reply) if reply.startswith("{") else {}


def send_with_nc(netns: Namespace, port: int, data: bytes) -> None:
    """A job the way a shell user sends one: `nc -N 127.0.0.1 PORT < file`."""
    netns.run("nc", "-N", "127.0.0.1", str(port), input=data, check=True)


def spooled(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.prn"))


def test_first_run_logs_where_the_printer_is_served_the_web_url_and_a_password_that_logs_in(
        start_dev, netns: Namespace, tmp_path: Path) -> None:
    run = start_dev()
    log = run.log()
    state = tmp_path / "state"
    served = SERVING.search(log)
    assert served, log
    assert (Path(served["spool"]), int(served["port"])) == (state / "spool", FIRST_PRINTER_PORT)
    web = WEB_URL.search(log)
    assert web and int(web["port"]) == FIRST_WEB_PORT
    shown = PASSWORD.search(log)
    assert shown, log
    assert Path(shown["file"]) == state / "password"
    assert (state / "password").read_text().strip() == shown["password"]
    assert (state / "password").stat().st_mode & 0o077 == 0  # the developer's secret only

    status, reply = login(netns, web["url"], shown["password"])
    assert status == 200 and reply.get("csrf_token"), reply
    assert login(netns, web["url"], shown["password"] + "x")[0] == 401


def test_a_job_sent_with_nc_lands_byte_identical_in_the_spool_directory(
        start_dev, netns: Namespace, tmp_path: Path) -> None:
    run = start_dev()
    spool = tmp_path / "state" / "spool"
    assert spooled(spool) == []
    job = bytes(range(256)) * 64 + os.urandom(200_000) + b"\x1b%-12345X@PJL EOJ\r\n"
    send_with_nc(netns, FIRST_PRINTER_PORT, job)
    run_log = run.log
    wait_for(lambda: f"done: {len(job)} bytes in" in run_log())
    [spooled_job] = spooled(spool)
    assert spooled_job.read_bytes() == job


def test_a_taken_first_port_moves_the_printer_and_the_web_page_to_the_next_free_ones(
        start_dev, netns: Namespace, tmp_path: Path) -> None:
    # Another print server (p910nd, say) has 9100 and 9101, and something has 8631.
    blocked = [FIRST_PRINTER_PORT, FIRST_PRINTER_PORT + 1, FIRST_WEB_PORT]
    holder = subprocess.Popen(
        netns.command(sys.executable, "-c", (
            "import socket, sys, time\n"
            f"held = [socket.create_server(('127.0.0.1', p)) for p in {blocked}]\n"
            "print('listening', flush=True)\n"
            "time.sleep(120)\n")),
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "listening"
        run = start_dev()
        log = run.log()
        assert (f"port {FIRST_PRINTER_PORT} is taken; the virtual printer uses port "
                f"{FIRST_PRINTER_PORT + 2}") in log
        served = SERVING.search(log)
        assert served and int(served["port"]) == FIRST_PRINTER_PORT + 2, log
        web = WEB_URL.search(log)
        assert web and int(web["port"]) == FIRST_WEB_PORT + 1, log
        config = (tmp_path / "state" / "usbprintd.conf").read_text()
        assert f"option port '{FIRST_PRINTER_PORT + 2}'" in config
        assert f"option web_port '{FIRST_WEB_PORT + 1}'" in config

        send_with_nc(netns, FIRST_PRINTER_PORT + 2, b"to the port the log named")
        spool = tmp_path / "state" / "spool"
        wait_for(lambda: len(spooled(spool)) == 1)
        assert spooled(spool)[0].read_bytes() == b"to the port the log named"
        assert holder.poll() is None  # the other server kept its ports
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_reuses_the_saved_state_without_overwriting_the_config(
        start_dev, netns: Namespace, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_dev("first.log")
    password = PASSWORD.search(first.log())["password"]
    first.stop()
    spool = state / "spool"
    config = state / "usbprintd.conf"
    # The developer renames the printer and leaves a note, as the config's header invites.
    edited = config.read_text().replace("option name 'Virtual printer'",
                                        "option name 'Desk printer'") + "# my note\n"
    config.write_text(edited)
    (spool / "job-kept.prn").write_bytes(b"an earlier job")

    second = start_dev("second.log")
    log = second.log()
    assert config.read_text() == edited
    assert "created development config" not in log
    assert not PASSWORD.search(log), "a second run must not show (or make) a new password"
    assert f"web page password: see {state / 'password'}" in log
    assert (state / "password").read_text().strip() == password
    assert re.search(r"serving 'Desk printer' \(\S+\) on 127\.0\.0\.1:9100", log), log
    assert (spool / "job-kept.prn").read_bytes() == b"an earlier job"
    status, _ = login(netns, WEB_URL.search(log)["url"], password)
    assert status == 200
