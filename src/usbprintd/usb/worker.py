"""One thread for the USB calls that can block, so the event loop never waits on a printer.

A usblp ioctl (LPGETSTATUS, LPIOC_GET_DEVICE_ID) is a USB control transfer, which the kernel
lets take up to 5 s (USBLP_CTL_TIMEOUT) on a wedged printer; libusb's GET_DEVICE_ID waits for
its own timeout. The event loop moves every job's bytes and serves the web page, so one slow
printer must not stall the others: such calls run here. One thread, started on first use and
shared by every printer — the calls are short and rare, and a thread per printer would cost a
router memory for nothing. Calls run one after the other, in the order they were made; each
result is posted back to the loop.

An fd given to `query_fd` belongs to the worker from then on: it is closed after the query, or
unused if the caller stopped waiting before its turn came. Callers pass either an fd opened for
that one query and never touched again, or a dup() of an fd they keep; so a query never runs on
an fd number that was closed and handed to something else in the meantime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Call:
    function: Callable[[], Any]
    fd: int | None  # the worker's to close
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    counter: _InFlight
    released: bool = False

    def run(self) -> None:
        """On the worker thread: call, release the fd, then post the outcome to the loop."""
        result: Any = None
        error: BaseException | None = None
        try:
            if self.future.cancelled():  # nobody waits any more (printer gone, daemon stopping)
                return
            try:
                result = self.function()
            except Exception as err:  # handed to the caller, who knows what it means
                error = err
        finally:
            self.release()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)

    def release(self) -> None:
        """Close the fd before the loop hears the answer: usblp allows one opener, and the loop
        may want the device again at once. Once per call, on whichever thread ends it."""
        if self.released:
            return
        self.released = True
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        self.counter.finished()


class _InFlight:
    """Calls submitted and not yet over, counted across the loop and the worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def started(self) -> None:
        with self._lock:
            self._count += 1

    def finished(self) -> None:
        with self._lock:
            self._count -= 1

    def __bool__(self) -> bool:
        return self._count > 0


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile: the answer is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BlockingWorker:
    """Runs blocking calls on its own thread and awaits their results on the loop."""

    def __init__(self, name: str = "usb-calls") -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] | None = None
        self._thread: threading.Thread | None = None
        self._in_flight = _InFlight()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def busy(self) -> bool:
        """A call is running or waiting: a new one would wait its turn."""
        return bool(self._in_flight)

    async def call(self, function: Callable[[], T]) -> T:
        """`function()` on the worker thread; its exception, if any, is raised here."""
        return await self._submit(function, None)

    async def query_fd(self, fd: int, query: Callable[[int], T]) -> T:
        """`query(fd)` on the worker thread. The worker owns `fd` from this call on."""
        return await self._submit(lambda: query(fd), fd)

    def stop(self) -> None:
        """Drop the calls not started yet (closing their fds) and let the thread end. A call
        under way finishes on its own: the thread is a daemon thread, so a wedged printer
        never holds up the daemon's exit."""
        calls, self._calls, self._thread = self._calls, None, None
        if calls is None:
            return
        with contextlib.suppress(queue.Empty):
            while True:
                pending = calls.get_nowait()
                if pending is not None:
                    pending.release()
                    pending.future.cancel()
        calls.put(None)

    async def _submit(self, function: Callable[[], T], fd: int | None) -> T:
        loop = asyncio.get_running_loop()
        self._in_flight.started()
        call = _Call(function, fd, loop, loop.create_future(), self._in_flight)
        try:
            self._queue().put(call)
        except BaseException:  # the thread could not start: the fd is still ours to close
            call.release()
            raise
        try:
            return await call.future
        finally:
            call.future.cancel()  # when the caller is cancelled: the worker skips the call

    def _queue(self) -> queue.SimpleQueue[_Call | None]:
        """The queue of the running thread; a thread that could not start (no memory) is
        tried again by the next call instead of leaving a queue nobody serves."""
        if self._calls is None:
            calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
            thread = threading.Thread(target=_serve, args=(calls,), name=self.name, daemon=True)
            thread.start()
            self._calls, self._thread = calls, thread
            log.debug("started the %s thread", self.name)
        return self._calls


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    while (call := calls.get()) is not None:
        call.run()
