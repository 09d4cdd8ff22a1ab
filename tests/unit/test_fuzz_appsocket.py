"""Property test of the AppSocket server's queue: random crowds of clients (finishing, closing,
resetting, going silent, arriving at random moments) against one PrintServer with real loopback
sockets and a real file as the printer, in-process.

Whatever the crowd does: every connection becomes exactly one accounted job, jobs run one at a
time in arrival order, the printer holds exactly the bytes each job took (never interleaved),
finished clients are printed whole, and the server ends idle with nothing left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usbprintd.appsocket import PrintServer, ServerSpec
from usbprintd.devices import Device
from usbprintd.jobs import JobJournal, Outcome

IDLE_TIMEOUT = 0.25
ENDINGS = ("fin", "close", "reset", "silent")


@dataclass
class Script:
    delay: float  # before connecting
    chunks: int  # pieces of the job, sent with pauses in between
    pause: float
    ending: str


@dataclass
class Result:
    script: Script
    data: bytes
    port: int = 0
    refused: bool = False


scripts = st.builds(
    Script,
    delay=st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.1]),
    chunks=st.integers(0, 3),
    pause=st.sampled_from([0.0, 0.01, 0.05]),
    ending=st.sampled_from(ENDINGS),
)


async def run_client(number: int, script: Script, port: int) -> Result:
    data = b"".join(b"<%02d:%d>" % (number, n) for n in range(script.chunks))
    result = Result(script, data)
    await asyncio.sleep(script.delay)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        result.refused = True
        return result
    sock = writer.get_extra_info("socket")
    result.port = sock.getsockname()[1]
    try:
        for n in range(script.chunks):
            writer.write(data[n * 6:(n + 1) * 6])
            await writer.drain()
            await asyncio.sleep(script.pause)
        if script.ending == "fin":
            writer.write_eof()
            await asyncio.wait_for(reader.read(), timeout=10)
        elif script.ending == "silent":
            await asyncio.wait_for(reader.read(), timeout=10)  # until the server gives up
        elif script.ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return result


async def crowd(out: Path, queue_limit: int, crowd_scripts: list[Script]):
    journal = JobJournal("fuzz")
    spec = ServerSpec(port=0, bind="127.0.0.1", queue_limit=queue_limit,
                      idle_timeout=IDLE_TIMEOUT, drain_grace=0.05)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        spec = ServerSpec(**{**spec.__dict__, "port": probe.getsockname()[1]})
    server = PrintServer("fuzz", Device(str(out)), spec, journal)
    server.start()
    try:
        results = await asyncio.gather(*(run_client(n, s, spec.port)
                                         for n, s in enumerate(crowd_scripts)))
        for _ in range(200):
            if server.active is None and not server.waiting:
                break
            await asyncio.sleep(0.02)
        state = (server.active, list(server.waiting), bool(server.listeners))
    finally:
        task = server.stop(Outcome.ABORTED, "test over")
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
    return results, journal, state


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(scripts, min_size=1, max_size=8), st.integers(0, 4))
def test_any_crowd_of_clients_is_served_one_whole_job_at_a_time(
    tmp_path_factory, crowd_scripts: list[Script], queue_limit: int
) -> None:
    out = tmp_path_factory.mktemp("crowd") / "printer.out"
    out.write_bytes(b"")
    results, journal, (active, waiting, listening) = asyncio.run(
        crowd(out, queue_limit, crowd_scripts))

    assert active is None and waiting == [] and listening  # idle again, port open
    jobs = sorted(journal.history, key=lambda job: job.id)  # port probes are only counted
    by_port = {r.port: r for r in results if not r.refused}
    listed = {int(job.client.rsplit(":", 1)[1]) for job in jobs}
    assert len(jobs) == len(listed) and listed <= set(by_port)
    assert sum(journal.counts.values()) == len(by_port)  # one job per connection
    assert journal.counts.get("empty", 0) == len(set(by_port) - listed)
    assert all(by_port[port].data == b"" for port in set(by_port) - listed)

    started = [job for job in jobs if job.started_at is not None]
    assert [job.started_at for job in started] == sorted(job.started_at for job in started)
    printed = b""
    for job in started:
        result = by_port[int(job.client.rsplit(":", 1)[1])]
        assert job.outcome.finished and job.bytes_in <= len(result.data)
        printed += result.data[:job.bytes_in]
        ending = result.script.ending
        if ending in ("fin", "close") and job.outcome is not Outcome.EMPTY:
            assert job.outcome is Outcome.DONE and job.bytes_in == len(result.data), (job,
                                                                                      result)
    assert out.read_bytes() == printed  # no job's bytes among another's
    for job in jobs:
        result = by_port[int(job.client.rsplit(":", 1)[1])]
        if job.started_at is None:
            assert job.outcome in (Outcome.LEFT, Outcome.TIMEOUT), (job, result)
            assert job.bytes_in == 0
