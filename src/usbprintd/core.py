"""The door between the event loop (which owns all state) and other threads or services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from usbprintd.eventlog import EventLog
from usbprintd.registry import Registry

T = TypeVar("T")


class Core:
    """Runs functions against the registry on the loop thread, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: Registry, events: EventLog):
        self.loop = loop
        self.registry = registry
        self.events = events

    def call(self, function: Callable[[Registry], T], timeout: float = 10.0) -> T:
        """From another thread: run `function(registry)` on the loop and return its result."""

        async def run() -> T:
            return function(self.registry)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


class Service(Protocol):
    """An optional part of the daemon (USB discovery, web page, mDNS) plugged into the core."""

    name: str

    def start(self, core: Core) -> None: ...

    def reload(self) -> None:
        """SIGHUP or a config change: pick up new settings without a restart."""

    async def stop(self) -> None: ...
