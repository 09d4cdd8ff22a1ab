"""Recent daemon events kept in RAM for the web page's log view."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

EVENT_LOG_LENGTH = 500


@dataclass(frozen=True)
class Event:
    time: float
    level: str
    source: str
    message: str


class EventLog(logging.Handler):
    """A logging handler remembering the last records (deque appends are thread-safe)."""

    def __init__(self, length: int = EVENT_LOG_LENGTH) -> None:
        super().__init__(logging.INFO)
        self._events: deque[Event] = deque(maxlen=length)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        self._events.append(Event(record.created, record.levelname.lower(), record.name, message))

    def recent(self, limit: int = EVENT_LOG_LENGTH) -> list[Event]:
        events = list(self._events)
        return events[-limit:]
