"""Faults around the daemon's configuration and life cycle: broken or vanishing config files,
reloads and edits while jobs run, stopping while a printer is stalled, ports that are taken.

Fail loud, keep serving (design.md, principle 6): a fault is logged once, clearly, and the rest
keeps working. `test_print_path.py` covers the basic cases (one broken file on reload, a reload
touching another printer, SIGTERM during a job, a port taken at start).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from daemon_process import (
    DaemonProcess,
    free_port,
    global_section,
    job_of,
    launch,
    port_accepts,
    printer_section,
    read_until_closed,
    send_job,
    wait_for,
)

NOT_LOADED = r"configuration not loaded, keeping the last good one"


def file_printer(workdir: Path, port: int, name: str = "file", **options: str) -> str:
    out = workdir / f"{name}.out"
    if not out.exists():
        out.write_bytes(b"")
    return printer_section(name, out, port, **options)


def reload_and_wait(daemon: DaemonProcess, pattern: str) -> str:
    """SIGHUP, then wait for `pattern` to appear once more than it had."""
    count = len(re.findall(pattern, daemon.log()))
    daemon.reload()
    return daemon.wait_log(pattern, count=count + 1)


def slow_job(port: int, parts: list[bytes], pause: float) -> tuple[threading.Thread, int]:
    """A client sending its job in parts with pauses; returns its thread and local port."""
    sock = socket.create_connection(("127.0.0.1", port))

    def run() -> None:
        # A reset (the job timed out) ends the client quietly; the daemon's log says why.
        with sock, contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for part in parts:
                sock.sendall(part)
                time.sleep(pause)
            sock.shutdown(socket.SHUT_WR)
            read_until_closed(sock, timeout=30)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, sock.getsockname()[1]


# --- broken configuration files -------------------------------------------------------------


def test_started_with_a_broken_config_it_stays_up_and_serves_once_fixed(daemons, tmp_path):
    port = free_port()
    good = global_section() + file_printer(tmp_path, port)
    daemon = launch(daemons, tmp_path, good.replace("config printer 'file'", "config printer 'fi"))
    daemon.wait_log(r"configuration not loaded.*usbprintd\.conf:\d+: unterminated ' quote")
    assert daemon.alive and not port_accepts(port)
    daemon.write_config(good)
    daemon.reload()
    wait_for(lambda: port_accepts(port))
    send_job(port, b"printed once the file was fixed")
    daemon.wait_log(r"done: 31 bytes in")


def truncated_inside_a_quote(text: str) -> bytes:
    return text[: text.index("option port '") + len("option port '9")].encode()


CORRUPTIONS = {
    # name: (how the file is damaged, what the log must say about it)
    "not UTF-8": (lambda path, good: path.write_bytes(b"config printer '\xff\xfe\x00garbage"),
                  r"not UTF-8 text"),
    "garbage text": (lambda path, good: path.write_text("<html>404 Not Found</html>\n"),
                     r":1: invalid command '<html>404'"),
    "truncated in a quote": (lambda path, good: path.write_bytes(truncated_inside_a_quote(good)),
                             r"unterminated ' quote"),
    "truncated to nothing": (lambda path, good: path.write_bytes(b""),
                             r"holds no configuration"),
    "deleted": (lambda path, good: path.unlink(), r"holds no configuration"),
    "a directory": (lambda path, good: (path.unlink(), path.mkdir()),
                    r"cannot read: Is a directory"),
}


def snapshot(path: Path) -> tuple[str, bytes | None]:
    if path.is_dir():
        return ("directory", None)
    if not path.exists():
        return ("missing", None)
    return ("file", path.read_bytes())


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_damaged_config_on_reload_keeps_the_last_good_one_and_is_left_alone(
    daemons, tmp_path, corruption
):
    port, other_port = free_port(), free_port()
    good = (global_section() + file_printer(tmp_path, port)
            + file_printer(tmp_path, other_port, name="other"))
    daemon = launch(daemons, tmp_path, good)
    wait_for(lambda: port_accepts(port) and port_accepts(other_port))
    damage, message = CORRUPTIONS[corruption]
    damage(daemon.config_path, good)
    before = snapshot(daemon.config_path)

    line = reload_and_wait(daemon, NOT_LOADED)
    assert str(daemon.config_path) in line and re.search(message, line), line
    send_job(port, b"still printing")
    send_job(other_port, b"both printers")
    daemon.wait_log(r"done: 13 bytes in")
    daemon.wait_log(r"done: 14 bytes in")
    time.sleep(0.5)
    assert snapshot(daemon.config_path) == before  # the daemon never "repairs" the owner's file
    assert daemon.log().count("ERROR") == 1  # one clear line, not a line per retry

    if daemon.config_path.is_dir():
        daemon.config_path.rmdir()
    daemon.write_config(good.replace("option name 'other'", "option name 'renamed'"))
    reload_and_wait(daemon, r"SIGHUP")
    send_job(other_port, b"after the repair")
    daemon.wait_log(r"done: 16 bytes in")


# --- edits and reloads while jobs run --------------------------------------------------------


def test_a_storm_of_reloads_and_edits_during_jobs_loses_nothing(daemons, tmp_path):
    port = free_port()
    variants = [global_section(queue_limit=str(8 + n), idle_timeout=str(100 + n))
                + file_printer(tmp_path, port).replace("option name 'file'",
                                                       f"option name 'file {n}'")
                for n in range(2)]
    daemon = launch(daemons, tmp_path, variants[0])
    wait_for(lambda: port_accepts(port))
    send_job(port, b"<first>")
    daemon.wait_log(r"done: 7 bytes in")
    fds_before = daemon.fd_count()
    stop = threading.Event()

    def storm() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            temp = daemon.config_path.with_suffix(".new")
            temp.write_text(variants[n % 2])
            os.replace(temp, daemon.config_path)  # as the web page and `uci commit` write
            daemon.reload()
            time.sleep(0.02)

    storm_thread = threading.Thread(target=storm)
    storm_thread.start()
    try:
        slow, _ = slow_job(port, [b"<slow:", b"spans", b"reloads>"], pause=0.4)
        quick = [b"<quick %02d>" % n for n in range(40)]
        for job in quick:
            send_job(port, job)
        slow.join(timeout=30)
    finally:
        stop.set()
        storm_thread.join()
    daemon.wait_log(r"done: 10 bytes in", count=40)
    log = daemon.log()
    assert log.count("SIGHUP") >= 20
    assert not re.search(r"aborted|failed|timeout|ERROR", log), log
    assert (tmp_path / "file.out").read_bytes() == b"<first><slow:spansreloads>" + b"".join(quick)
    wait_for(lambda: daemon.fd_count() == fds_before)  # reloads leave nothing open behind


def test_settings_of_the_busy_printer_change_for_the_next_job_not_the_running_one(
    daemons, tmp_path
):
    old_port, new_port = free_port(), free_port()
    daemon = launch(daemons, tmp_path, global_section() + file_printer(tmp_path, old_port))
    wait_for(lambda: port_accepts(old_port))
    running, client = slow_job(old_port, [b"<paused longer", b" than the new timeout>"], 1.5)
    daemon.wait_log(job_of(client) + "started")
    daemon.write_config(global_section(idle_timeout="1") + file_printer(tmp_path, new_port))
    daemon.reload()
    wait_for(lambda: port_accepts(new_port))
    assert not port_accepts(old_port)
    running.join(timeout=30)
    daemon.wait_log(job_of(client) + "done: 36 bytes in")  # kept the timeout it started with
    _, next_client = slow_job(new_port, [b"<too slow now>", b"!"], 1.5)
    daemon.wait_log(job_of(next_client) + "timeout")


def test_disabling_the_busy_printer_lets_its_job_finish_and_refuses_new_ones(daemons, tmp_path):
    port = free_port()
    daemon = launch(daemons, tmp_path, global_section() + file_printer(tmp_path, port))
    wait_for(lambda: port_accepts(port))
    running, client = slow_job(port, [b"<started before>", b"<the owner disabled it>"], 1.0)
    daemon.wait_log(job_of(client) + "started")
    daemon.write_config(global_section() + file_printer(tmp_path, port, enabled="0"))
    daemon.reload()
    daemon.wait_log(r"'file' .* is present but not accepting jobs: disabled")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    running.join(timeout=30)
    daemon.wait_log(job_of(client) + "done")
    assert (tmp_path / "file.out").read_bytes() == b"<started before><the owner disabled it>"


# --- stopping ----------------------------------------------------------------------------------


def test_sigterm_while_the_printer_is_stalled_and_clients_wait_stops_at_once(daemons, tmp_path):
    fifo = tmp_path / "stalled"
    os.mkfifo(fifo)  # nobody reads it: the printer takes 64 KiB and then nothing
    port = free_port()
    daemon = launch(daemons, tmp_path, global_section() + printer_section("stalled", fifo, port))
    wait_for(lambda: port_accepts(port))
    active = socket.create_connection(("127.0.0.1", port))
    active.setblocking(False)
    try:
        while True:
            active.send(b"x" * 65536)
    except BlockingIOError:
        pass  # everything is full: the job is stalled on the printer
    waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for sock in waiting:
        sock.sendall(b"waiting job")
        daemon.wait_log(job_of(sock.getsockname()[1]) + "queued")
    time.sleep(1.2)  # stalled for more than a second

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert time.monotonic() - started < 3
    for sock in [active, *waiting]:
        daemon.wait_log(job_of(sock.getsockname()[1]) + r"aborted: .*daemon stopping")
        sock.setblocking(True)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"more")
            sock.recv(1)
        sock.close()
    assert daemon.log().splitlines()[-1].endswith("stopped")


# --- ports -------------------------------------------------------------------------------------


def test_moving_a_printer_onto_a_taken_port_is_logged_once_and_served_when_it_frees(
    daemons, tmp_path
):
    port_a, port_b, taken = free_port(), free_port(), free_port()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", taken))
    blocker.listen()
    base = global_section() + file_printer(tmp_path, port_a, name="a")
    daemon = launch(daemons, tmp_path, base + file_printer(tmp_path, port_b, name="b"))
    wait_for(lambda: port_accepts(port_a) and port_accepts(port_b))
    daemon.write_config(base + file_printer(tmp_path, taken, name="b"))
    daemon.reload()
    daemon.wait_log(rf"b: cannot listen on 127\.0\.0\.1:{taken}: Address already in use")
    assert not port_accepts(port_b)
    send_job(port_a, b"the other printer is not disturbed")
    daemon.wait_log(r"done: 34 bytes in")
    time.sleep(5.5)  # one retry later: still taken, and not logged again
    assert len(re.findall(r"cannot listen on", daemon.log())) == 1
    blocker.close()
    wait_for(lambda: port_accepts(taken), timeout=8)
    daemon.wait_log(r"b: bind problem resolved")
    send_job(taken, b"served once free")
    daemon.wait_log(r"done: 16 bytes in")
    assert (tmp_path / "b.out").read_bytes() == b"served once free"
