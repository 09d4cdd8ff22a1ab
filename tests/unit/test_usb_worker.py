"""The worker thread for blocking USB calls: started on first use, answers on the loop, owns
the fds it is given (closed after the query, or unused when nobody waits any more)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from usbprintd.usb.worker import BlockingWorker


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_thread_starts_with_the_first_call_and_answers_on_the_loop():
    async def scenario():
        worker = BlockingWorker()
        assert not worker.started
        try:
            name = await worker.call(lambda: threading.current_thread().name)
            assert worker.started and name == "usb-calls"
            assert threading.current_thread() is threading.main_thread()
            with pytest.raises(OSError, match="wedged"):
                await worker.call(lambda: (_ for _ in ()).throw(OSError("wedged")))
        finally:
            worker.stop()

    asyncio.run(scenario())


def test_calls_run_one_at_a_time_in_order():
    async def scenario():
        worker = BlockingWorker()
        order: list[int] = []

        def step(n: int) -> int:
            time.sleep(0.01 * (3 - n))  # the first is the slowest
            order.append(n)
            return n

        try:
            results = await asyncio.gather(*(worker.call(lambda n=n: step(n)) for n in range(3)))
        finally:
            worker.stop()
        assert results == order == [0, 1, 2]

    asyncio.run(scenario())


def test_query_gets_the_fd_and_the_worker_closes_it():
    async def scenario():
        read_end, write_end = os.pipe()
        os.write(write_end, b"status")
        worker = BlockingWorker()
        try:
            assert await worker.query_fd(read_end, lambda fd: os.read(fd, 6)) == b"status"
        finally:
            worker.stop()
            os.close(write_end)
        assert not is_open(read_end)

    asyncio.run(scenario())


def test_query_abandoned_before_its_turn_is_skipped_and_its_fd_closed():
    async def scenario():
        worker = BlockingWorker()
        ran: list[str] = []
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            busy = asyncio.get_running_loop().create_task(worker.call(lambda: time.sleep(0.2)))
            query = asyncio.get_running_loop().create_task(
                worker.query_fd(fd, lambda _: ran.append("query")))
            await asyncio.sleep(0.05)
            query.cancel()  # the printer went away while its query waited its turn
            await busy
            await worker.call(lambda: None)  # everything before it is done
        finally:
            worker.stop()
        assert query.cancelled() and ran == []
        assert not is_open(fd)

    asyncio.run(scenario())


def test_answer_arriving_after_the_caller_left_is_dropped_and_the_fd_closed():
    async def scenario():
        worker = BlockingWorker()
        started = threading.Event()
        fd = os.open(os.devnull, os.O_RDONLY)

        def wedged(_: int) -> str:
            started.set()
            time.sleep(0.3)
            return "late"

        try:
            query = asyncio.get_running_loop().create_task(worker.query_fd(fd, wedged))
            await asyncio.to_thread(started.wait, 2)
            query.cancel()
            with pytest.raises(asyncio.CancelledError):
                await query
            assert await worker.call(lambda: "next") == "next"  # the late answer went nowhere
        finally:
            worker.stop()
        assert not is_open(fd)

    asyncio.run(scenario())


def test_stop_closes_the_fds_of_queries_not_started_and_leaves_no_thread_waiting():
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]

    async def scenario():
        worker = BlockingWorker()
        loop = asyncio.get_running_loop()
        busy = loop.create_task(worker.call(lambda: time.sleep(0.2)))
        queries = [loop.create_task(worker.query_fd(fd, os.fstat)) for fd in fds]
        await asyncio.sleep(0.05)
        thread = worker._thread
        worker.stop()
        assert all(not is_open(fd) for fd in fds)
        await asyncio.gather(*queries, return_exceptions=True)
        assert all(q.cancelled() for q in queries)
        await busy  # the call under way still finishes
        await asyncio.to_thread(thread.join, 2)
        assert not thread.is_alive()

    asyncio.run(scenario())


def test_answer_for_a_closed_loop_is_not_an_error():
    worker = BlockingWorker()
    started = threading.Event()

    async def scenario():
        async def leave_early():
            await worker.call(lambda: (started.set(), time.sleep(0.2)))

        task = asyncio.get_running_loop().create_task(leave_early())
        await asyncio.to_thread(started.wait, 2)
        task.cancel()

    asyncio.run(scenario())  # the loop is closed before the call returns
    time.sleep(0.3)
    thread = worker._thread
    assert thread.is_alive()  # it posted to a closed loop and lived on
    worker.stop()
    thread.join(2)
    assert not thread.is_alive()


def test_a_thread_that_could_not_start_is_started_by_the_next_call(monkeypatch):
    """Out of memory once must not leave a queue nobody serves: every later USB call would
    wait for ever, each holding its printer's device open."""
    real_start = threading.Thread.start
    failures = iter([RuntimeError("can't start new thread")])

    def start_once_failing(thread: threading.Thread) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_once_failing)

    async def scenario():
        worker = BlockingWorker()
        try:
            fd = os.open(os.devnull, os.O_RDONLY)
            with pytest.raises(RuntimeError, match="can't start"):
                await worker.query_fd(fd, lambda fd: fd)
            assert not is_open(fd) and not worker.busy and not worker.started
            assert await asyncio.wait_for(worker.call(lambda: "answered"), 5) == "answered"
        finally:
            worker.stop()

    asyncio.run(scenario())


def test_busy_while_a_call_runs_or_waits_and_not_after():
    gate = threading.Event()

    async def scenario():
        worker = BlockingWorker()
        try:
            assert not worker.busy
            running = asyncio.get_running_loop().create_task(worker.call(lambda: gate.wait(5)))
            waiting = asyncio.get_running_loop().create_task(worker.call(lambda: "second"))
            await asyncio.sleep(0)
            assert worker.busy
            waiting.cancel()  # the caller leaves; its call still counts until the worker skips it
            gate.set()
            assert await running
            for _ in range(100):
                if not worker.busy:
                    break
                await asyncio.sleep(0.01)
            assert not worker.busy
        finally:
            gate.set()
            worker.stop()

    asyncio.run(scenario())
