"""Per-job accounting, kept in RAM only (flash is precious)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

HISTORY_LENGTH = 50


class Outcome(StrEnum):
    QUEUED = "queued"
    PRINTING = "printing"
    DRAINING = "draining"  # all data sent, relaying the printer's last status
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"  # client silent for idle_timeout
    LEFT = "left"  # hung up while waiting in the queue
    ABORTED = "aborted"  # daemon stopping
    EMPTY = "empty"  # connected and closed without sending a byte (a port probe)

    @property
    def finished(self) -> bool:
        return self not in {Outcome.QUEUED, Outcome.PRINTING, Outcome.DRAINING}


@dataclass
class Job:
    id: int
    printer: str
    client: str
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    bytes_in: int = 0  # client -> printer
    bytes_out: int = 0  # printer -> client (back-channel)
    outcome: Outcome = Outcome.QUEUED
    error: str = ""
    stalled: bool = False  # the printer stopped taking data (paper out, offline)

    def start(self) -> None:
        self.started_at = time.time()
        self.outcome = Outcome.PRINTING

    def finish(self, outcome: Outcome, error: str = "") -> None:
        if self.outcome.finished:
            return
        self.ended_at = time.time()
        self.outcome = outcome
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        end = self.ended_at or time.time()
        elapsed = end - self.started_at if self.started_at else 0.0
        data["rate"] = self.bytes_in / elapsed if elapsed > 0 else 0.0
        return data


@dataclass
class JobJournal:
    """History and counters of one printer's jobs."""

    printer: str
    history: deque[Job] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))
    counts: dict[str, int] = field(default_factory=dict)
    bytes_total: int = 0
    next_id: int = 1

    def new_job(self, client: str) -> Job:
        job = Job(id=self.next_id, printer=self.printer, client=client)
        self.next_id += 1
        return job

    def record(self, job: Job) -> None:
        if job.outcome is not Outcome.EMPTY:  # probes are counted, not listed
            self.history.appendleft(job)
        self.counts[str(job.outcome)] = self.counts.get(str(job.outcome), 0) + 1
        self.bytes_total += job.bytes_in

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "bytes_total": self.bytes_total,
            "history": [job.as_dict() for job in self.history],
        }
