"""The AppSocket (HP JetDirect, "raw 9100") server of one printer.

Contract (design.md): the port listens only while the printer may accept jobs and a queue slot
is free; one job at a time in arrival order; waiting clients are accepted but not read (TCP
backpressure); a full queue closes the listening socket so new clients are refused; one buffer
per job bounds memory; after the client's half-close the back-channel is relayed until the
printer has taken every byte and has been quiet for `drain_grace`; a client silent for
`idle_timeout` loses its job; every job is accounted in the printer's journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from usbprintd.devices import Channel, Device, DeviceError
from usbprintd.jobs import Job, JobJournal, Outcome

log = logging.getLogger(__name__)

# A job's only buffer, so memory per job stays bounded whatever the printer does. A job starts
# with a small one (most jobs over a LAN are a few KiB to a few MiB, and a fresh zeroed buffer
# per job is what a small job pays for); a job that fills it gets the large one, which halves
# the wake-ups per MiB that a printer slower than the network costs.
FIRST_CHUNK = 16 * 1024
CHUNK = 256 * 1024
LISTEN_BACKLOG = 16  # at least; see listen_backlog()
BIND_RETRY_SECONDS = 5.0
ACCEPT_RETRY_SECONDS = 1.0
MAX_DRAIN_SECONDS = 60.0  # a printer that never stops chattering still releases the client
STALL_SECONDS = 1.0


@dataclass(frozen=True)
class ServerSpec:
    port: int
    bind: str = ""
    queue_limit: int = 8
    idle_timeout: float = 300.0
    drain_grace: float = 2.0
    bidirectional: bool = False
    accepting: bool = True  # enabled, valid and ready: otherwise the port stays closed

    @property
    def listen_key(self) -> tuple[int, str]:
        return (self.port, self.bind)


class IdleTimeout(Exception):
    pass


class ClientGone(Exception):
    pass


@dataclass
class Client:
    sock: socket.socket
    job: Job
    watched: bool = False  # a hang-up watch is registered while it waits
    waited: bool = False  # queued behind another job (its connection may have died since)
    silence_timer: asyncio.TimerHandle | None = None  # while it waits without having sent


def _client_label(address: tuple) -> str:
    host, port = address[0], address[1]
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _abort_connection(sock: socket.socket) -> None:
    """Close with RST so the client knows the job did not complete (a FIN looks like success)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _enable_keepalive(sock: socket.socket) -> None:
    """Notice clients whose host vanished (cable pulled) even while their job waits."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)


def listen_backlog(queue_limit: int) -> int:
    """The kernel's accept queue must hold a burst of as many clients as the job queue admits
    (they may all arrive before the loop runs): a shorter one drops their handshakes, and with
    SYN cookies the kernel later resets them in the middle of their job."""
    return max(LISTEN_BACKLOG, queue_limit + 1)


def open_listeners(bind: str, port: int, backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """Listening sockets for `bind` ('' = every IPv4 and IPv6 address, through one dual-stack
    socket when the kernel has IPv6)."""
    if bind:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        # '::' means every address whatever net.ipv6.bindv6only says, as the config check assumes
        return [_listen(family, bind, port, backlog, dual_stack=bind == "::")]
    try:
        return [_listen(socket.AF_INET6, "::", port, backlog, dual_stack=True)]
    except OSError as err:
        if err.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT):
            raise
        return [_listen(socket.AF_INET, "0.0.0.0", port, backlog)]


def _listen(
    family: int, host: str, port: int, backlog: int, dual_stack: bool = False
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _enable_keepalive(sock)  # accepted connections inherit it
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class PrintServer:
    """Serves one printer's device on one port; lives while the device is present."""

    def __init__(
        self,
        name: str,
        device: Device,
        spec: ServerSpec,
        journal: JobJournal,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.device = device
        self.spec = spec
        self.journal = journal
        self.on_change = on_change
        self.listeners: list[socket.socket] = []
        self.bind_error = ""
        self.waiting: deque[Client] = deque()
        self.active: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._channel: Channel | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._accept_paused = False
        self._stopped = False
        self._last_client_data = 0.0
        self._idle_watch: asyncio.TimerHandle | None = None
        self._last_backchannel = 0.0
        self._stop_reason: tuple[Outcome, str] = (Outcome.ABORTED, "server stopped")

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._sync_listeners()

    def update(self, spec: ServerSpec) -> None:
        """Apply new settings; the job in progress keeps the settings it started with."""
        old, self.spec = self.spec, spec
        if old.listen_key != spec.listen_key:
            self._close_listeners()
        elif old.queue_limit != spec.queue_limit:
            for sock in self.listeners:
                sock.listen(listen_backlog(spec.queue_limit))
        self._sync_listeners()
        self.on_change()

    def stop(self, outcome: Outcome, reason: str) -> asyncio.Task[None] | None:
        """Close the port at once and end every job, accounted with `outcome` (daemon stop,
        unplug). Returns the job task still winding down, for callers that must wait for it."""
        self._stopped = True
        self._close_listeners()
        while self.waiting:
            self._drop_waiting(self.waiting[0], outcome, reason)
        task = self._task
        if task is not None:
            self._stop_reason = (outcome, reason)
            task.cancel()
        return task

    # --- state for snapshots -----------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        result = []
        for sock in self.listeners:
            host, port = sock.getsockname()[:2]
            result.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return result

    @property
    def stalled(self) -> bool:
        since = getattr(self._channel, "stalled_since", None)
        return since is not None and time.monotonic() - since >= STALL_SECONDS

    @property
    def channel_fd(self) -> int | None:
        """The open device fd while a job is stalled (for status queries), else None."""
        return self._channel.fd if self._channel is not None and self.stalled else None

    # --- listening ---------------------------------------------------------------------------

    def _has_slot(self) -> bool:
        return self.active is None or len(self.waiting) < self.spec.queue_limit

    def _sync_listeners(self) -> None:
        want = self.spec.accepting and not self._stopped and self._has_slot()
        if want and not self.listeners and self._retry is None:
            self._open_listeners()
        elif not want and self.listeners:
            self._close_listeners()

    def _open_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.listeners = open_listeners(self.spec.bind, self.spec.port,
                                            listen_backlog(self.spec.queue_limit))
        except OSError as err:
            where = f"{self.spec.bind or '*'}:{self.spec.port}"
            message = f"cannot listen on {where}: {err.strerror or err}"
            if message != self.bind_error:
                log.error("%s: %s; retrying every %.0f s", self.name, message, BIND_RETRY_SECONDS)
            self.bind_error = message
            self._retry = loop.call_later(BIND_RETRY_SECONDS, self._retry_listen)
            self.on_change()
            return
        if self.bind_error:
            log.info("%s: bind problem resolved", self.name)
        self.bind_error = ""
        for sock in self.listeners:
            loop.add_reader(sock.fileno(), self._accept_all, sock)
        log.debug("%s: listening on %s", self.name, ", ".join(self.addresses))
        self.on_change()

    def _retry_listen(self) -> None:
        self._retry = None
        self._sync_listeners()

    def _close_listeners(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self.bind_error:
            self.bind_error = ""
        if not self.listeners:
            return
        loop = asyncio.get_running_loop()
        for sock in self.listeners:
            loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners = []
        log.debug("%s: port %d closed", self.name, self.spec.port)
        self.on_change()

    def _accept_all(self, listener: socket.socket) -> None:
        """Take one connection per wake-up while the queue has room (the listener stays
        readable while more wait, so the loop comes back for them, and a lone client costs no
        extra accept that finds nothing). Once the queue is full, take every connection the
        kernel completed before the port closes: closing it with clients still in its backlog
        would reset connections that already succeeded. The queue can thus overshoot by at
        most the backlog."""
        while True:
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:  # EMFILE and friends: keep serving what we have
                self._pause_accepting(listener, err)
                break
            if self._accept_paused:
                self._accept_paused = False
                log.info("%s: accepting connections again", self.name)
            self._admit(sock, _client_label(address))
            if self._has_slot():
                break
        self._sync_listeners()

    def _pause_accepting(self, listener: socket.socket, err: OSError) -> None:
        """Out of descriptors or memory, the kernel keeps the connection waiting and the
        listener readable, so retrying at once would spin (and log) without end: look again
        in a moment instead, and tell the owner once."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.fileno())
        if not self._accept_paused:
            log.warning("%s: cannot accept connections: %s; retrying every %g s", self.name,
                        err.strerror or err, ACCEPT_RETRY_SECONDS)
        self._accept_paused = True
        loop.call_later(ACCEPT_RETRY_SECONDS, self._resume_accepting, listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if any(sock is listener for sock in self.listeners):  # not closed in the meantime
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept_all, listener)

    # --- queue -------------------------------------------------------------------------------

    def _admit(self, sock: socket.socket, label: str) -> None:
        sock.setblocking(False)
        client = Client(sock, self.journal.new_job(label))
        self.waiting.append(client)
        if self.active is None:
            self._start_next()
        else:
            client.waited = True
            log.info("%s: job %d from %s queued (%d waiting)", self.name, client.job.id, label,
                     len(self.waiting))
            self._watch_hangup(client)
        self.on_change()

    def _watch_hangup(self, client: Client) -> None:
        """Until it sends something, a waiting client is watched for hanging up and for
        silence: one that sends nothing for idle_timeout leaves the queue at once, instead of
        holding the printer for a whole idle_timeout when its turn comes."""
        loop = asyncio.get_running_loop()
        client.watched = True
        loop.add_reader(client.sock.fileno(), self._check_hangup, client)
        idle_timeout = self.spec.idle_timeout
        if idle_timeout > 0:
            client.silence_timer = loop.call_later(
                idle_timeout, lambda: self._drop_waiting(
                    client, Outcome.TIMEOUT, f"client sent nothing for {idle_timeout:g} s"))

    def _unwatch(self, client: Client) -> None:
        if client.silence_timer is not None:
            client.silence_timer.cancel()
            client.silence_timer = None
        if client.watched:
            client.watched = False
            asyncio.get_running_loop().remove_reader(client.sock.fileno())

    def _check_hangup(self, client: Client) -> None:
        """A waiting client that closed before sending anything has left the queue; one that
        sent data keeps its place (its job is complete in the socket buffer)."""
        try:
            peeked = client.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self._drop_waiting(client, Outcome.LEFT, f"client went away: {err.strerror or err}")
            return
        if peeked:
            self._unwatch(client)
        else:
            self._drop_waiting(client, Outcome.LEFT, "client hung up while waiting")

    def _drop_waiting(self, client: Client, outcome: Outcome, reason: str) -> None:
        self._unwatch(client)
        with contextlib.suppress(ValueError):
            self.waiting.remove(client)
        _abort_connection(client.sock)
        client.job.finish(outcome, reason)
        self.journal.record(client.job)
        log.info("%s: job %d from %s %s: %s", self.name, client.job.id, client.job.client,
                 outcome, reason)
        self._sync_listeners()
        self.on_change()

    def _start_next(self) -> None:
        if self.active is not None:
            return
        client = self._next_waiting_client()
        if client is None:
            return
        self._unwatch(client)
        self.active = client
        self._task = asyncio.get_running_loop().create_task(self._run(client))
        self._task.add_done_callback(lambda _: self._job_finished(client))

    def _next_waiting_client(self) -> Client | None:
        """The first waiting client still connected. One that reset while it waited (after
        sending part of its job, so the hang-up watch had ended) failed before its turn:
        printing the part would only waste paper, twice over for clients that reset and
        resend."""
        while self.waiting:
            client = self.waiting.popleft()
            error = client.waited and client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not error:
                return client
            self._drop_waiting(client, Outcome.LEFT, f"client went away: {os.strerror(error)}")
        return None

    def _job_finished(self, client: Client) -> None:
        """Account the job and start the next one. Called as the job's last step, so the next
        job starts without another turn of the event loop, and by the task's done callback,
        which matters only for a job cancelled before it ever ran."""
        if self.active is not client:
            return  # already finished
        if not client.job.outcome.finished:  # cancelled before it ever ran
            _abort_connection(client.sock)
            client.job.finish(*self._stop_reason)
        self.journal.record(client.job)
        self.active = None
        self._task = None
        self._start_next()
        self._sync_listeners()
        self.on_change()

    # --- one job -----------------------------------------------------------------------------

    async def _run(self, client: Client) -> None:
        job, spec = client.job, self.spec
        job.start()
        log.debug("%s: job %d from %s started", self.name, job.id, job.client)
        self.on_change()
        outcome, error = Outcome.DONE, ""
        try:
            self._channel = await self.device.open(spec.bidirectional)
            await self._transfer(client, self._channel, spec)
        except IdleTimeout:
            outcome, error = Outcome.TIMEOUT, f"client sent nothing for {spec.idle_timeout:g} s"
        except ClientGone as err:
            outcome, error = Outcome.FAILED, str(err)
        except DeviceError as err:
            outcome, error = Outcome.FAILED, f"printer: {err}"
        except asyncio.CancelledError:
            outcome, error = self._stop_reason
        except Exception as err:  # a bug must cost one job, never the printer's server
            log.exception("%s: job %d: unexpected error", self.name, job.id)
            outcome, error = Outcome.FAILED, f"internal error: {err}"
        finally:
            self._cancel_idle_watch()
            if self._channel is not None:
                job.bytes_in = self._channel.written  # counts a write cut off half-way too
                self.device.learn(self._channel)
                with contextlib.suppress(OSError):
                    self._channel.close(completed=outcome is Outcome.DONE)
                self._channel = None
            if outcome is Outcome.DONE:
                client.sock.close()
            else:
                _abort_connection(client.sock)
            if outcome is Outcome.DONE and not job.bytes_in:
                outcome = Outcome.EMPTY
            job.finish(outcome, error)
            level = {Outcome.DONE: logging.INFO, Outcome.EMPTY: logging.DEBUG}.get(
                outcome, logging.WARNING)
            log.log(level, "%s: job %d from %s %s: %d bytes in, %d bytes out%s", self.name,
                    job.id, job.client, outcome, job.bytes_in, job.bytes_out,
                    f" ({error})" if error else "")
            self._job_finished(client)

    async def _transfer(self, client: Client, channel: Channel, spec: ServerSpec) -> None:
        back: asyncio.Task[None] | None = None
        if spec.bidirectional and channel.can_read:
            back = asyncio.get_running_loop().create_task(self._relay_back(client, channel))
        try:
            await self._forward(client, channel, spec.idle_timeout)
            await channel.flush()
            if back is not None:
                client.job.outcome = Outcome.DRAINING
                self.on_change()
                await self._drain(back, spec.drain_grace)
        finally:
            if back is not None:
                back.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientGone, DeviceError):
                    await back

    async def _forward(self, client: Client, channel: Channel, idle_timeout: float) -> None:
        """Client -> printer, one buffer at a time; reads wait until the printer took the last."""
        buffer = bytearray(FIRST_CHUNK)
        view = memoryview(buffer)
        job = client.job
        while True:
            self._last_client_data = time.monotonic()
            received = await self._receive(client.sock, buffer, idle_timeout)
            if not received:
                self._cancel_idle_watch()
                return
            self._last_client_data = float("inf")  # writing: a stalled printer is not the client
            await channel.write(view[:received])
            job.bytes_in += received
            if received == len(buffer) and len(buffer) < CHUNK:
                buffer = bytearray(CHUNK)
                view = memoryview(buffer)

    async def _receive(self, sock: socket.socket, buffer: bytearray, idle_timeout: float) -> int:
        """The next piece of the job; the idle watch is armed only once the client makes us
        wait (a small job is usually all buffered by the time it starts)."""
        try:
            try:
                return sock.recv_into(buffer)
            except BlockingIOError:
                pass
            if idle_timeout > 0 and self._idle_watch is None:
                self._arm_idle_watch(idle_timeout)
            return await asyncio.get_running_loop().sock_recv_into(sock, buffer)
        except asyncio.CancelledError:
            if self._idle_expired(idle_timeout):
                raise IdleTimeout from None
            raise
        except OSError as err:
            raise ClientGone(f"client connection lost: {err.strerror or err}") from err

    def _arm_idle_watch(self, idle_timeout: float) -> None:
        loop = asyncio.get_running_loop()

        def check() -> None:
            if self._idle_expired(idle_timeout) and self._task is not None:
                self._task.cancel()
            else:
                self._idle_watch = loop.call_later(idle_timeout / 4, check)

        self._idle_watch = loop.call_later(idle_timeout / 4, check)

    def _idle_expired(self, idle_timeout: float) -> bool:
        return idle_timeout > 0 and time.monotonic() - self._last_client_data >= idle_timeout

    def _cancel_idle_watch(self) -> None:
        if self._idle_watch is not None:
            self._idle_watch.cancel()
            self._idle_watch = None

    async def _relay_back(self, client: Client, channel: Channel) -> None:
        """Printer -> client, during the job and after the client's half-close."""
        loop = asyncio.get_running_loop()
        while data := await channel.read():
            self._last_backchannel = time.monotonic()
            try:
                await loop.sock_sendall(client.sock, data)
            except OSError as err:
                raise ClientGone(f"client connection lost: {err.strerror or err}") from err
            client.job.bytes_out += len(data)

    async def _drain(self, back: asyncio.Task[None], grace: float) -> None:
        """Keep relaying until the back-channel has been quiet for `grace` seconds.

        The printer already has every byte, so a client that stops listening now loses only
        status, not its job."""
        started = time.monotonic()
        while not back.done():
            now = time.monotonic()
            quiet = now - max(self._last_backchannel, started)
            if quiet >= grace or now - started >= MAX_DRAIN_SECONDS:
                return
            await asyncio.wait({back}, timeout=grace - quiet)
