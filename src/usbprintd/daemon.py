"""Wiring: the event loop, signals, the registry and the optional services around it."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Iterable

from usbprintd.core import Core, Service
from usbprintd.eventlog import EventLog
from usbprintd.registry import Registry
from usbprintd.uci import ConfigStore

log = logging.getLogger(__name__)

PINNED_DEVICE_POLL_SECONDS = 2.0

# Optional services, imported only when wanted so a router without a feature does not pay the
# memory of its imports. Each module exposes `create_service(core) -> Service | None`.
OPTIONAL_SERVICES = ("usbprintd.usb.service", "usbprintd.web.service", "usbprintd.announce")


def _load_services(core: Core, names: Iterable[str]) -> list[Service]:
    services: list[Service] = []
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # the feature is not part of this build
            log.warning("%s unavailable: %s", module_name, err)
            continue
        service = module.create_service(core)
        if service is not None:
            services.append(service)
    return services


class Daemon:
    def __init__(
        self,
        store: ConfigStore,
        events: EventLog | None = None,
        services: Iterable[str] = OPTIONAL_SERVICES,
        log_level: str | None = None,
    ) -> None:
        self.store = store
        self.log_level = log_level
        self.events = events or EventLog()
        self.service_names = tuple(services)
        self.services: list[Service] = []

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        registry = Registry(self.store, self.log_level)
        core = Core(loop, registry, self.events)
        stop = asyncio.Event()
        log.info("usbprintd starting with %s", self.store.description)
        registry.reload()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._reload(registry))
        self.services = _load_services(core, self.service_names)
        for service in self.services:
            service.start(core)
        poller = loop.create_task(self._poll_pinned_devices(registry))
        await stop.wait()
        log.info("stopping")
        poller.cancel()
        for service in reversed(self.services):
            await service.stop()
        await registry.shutdown()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        log.info("stopped")
        return 0

    def _reload(self, registry: Registry) -> None:
        log.info("SIGHUP: reloading configuration")
        registry.reload(edited_outside=True)
        registry.firmware_changed()  # a blob dropped into firmware_dir by hand
        for service in self.services:
            service.reload()

    @staticmethod
    async def _poll_pinned_devices(registry: Registry) -> None:
        """Device paths named in the config (files, FIFOs, p910nd-style /dev/usb/lpN pins)."""
        while True:
            await asyncio.sleep(PINNED_DEVICE_POLL_SECONDS)
            registry.check_pinned_devices()
