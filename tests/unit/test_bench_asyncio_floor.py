"""The asyncio floor of bench/asyncio_floor.py does a job's whole work: it reads every byte the
client sends before it closes, as usbprintd does (a floor that closed early would be no floor)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: bench/

from bench.asyncio_floor import wait_listening
from bench.servers import HOST

FLOOR_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "asyncio_floor.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def test_the_floor_server_reads_the_whole_job_before_closing() -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(FLOOR_SCRIPT), "--serve-floor", str(port)])
    try:
        wait_listening(port)
        with socket.create_connection((HOST, port), timeout=10) as client:
            # More than the socket buffers hold: a server that closed before reading it all
            # would reset the connection and make sendall or recv fail.
            client.sendall(b"x" * 3_000_000)
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1) == b""
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(10)
