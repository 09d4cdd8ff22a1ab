"""The web page as a daemon service: a WSGI server thread bound to web_listen:web_port.

The service always exists, but bottle is imported only once web_port is set, so a router
without the page does not pay for it, and turning the page on or off is a config change like
any other, applied without a restart. The listener is rebuilt only when web_listen or web_port
change; everything else the page needs (auth mode, password hash, firmware_dir) is read from the
current settings on use.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from usbprintd.config import GlobalSettings
from usbprintd.core import Core
from usbprintd.registry import Registry

if TYPE_CHECKING:
    from usbprintd.web.app import WebApp

log = logging.getLogger(__name__)

BIND_RETRY_SECONDS = 5.0


class WebService:
    name = "web"

    def __init__(self, core: Core) -> None:
        self.core = core
        # Replaced (never mutated) on the loop thread; the web threads only read it.
        self.settings: GlobalSettings = core.registry.config.settings
        self._app: WebApp | None = None
        self._server = None
        self._retry: asyncio.TimerHandle | None = None

    def start(self, core: Core) -> None:
        core.registry.subscribe(lambda: self._settings_changed(core.registry))
        self._listen()

    def _build_app(self) -> WebApp:
        """The bottle app, built on first use: importing bottle costs a few MiB of RAM."""
        if self._app is None:
            from usbprintd.web import without_openssl_hashes

            without_openssl_hashes()
            from usbprintd.web.app import build_app, find_www

            www = find_www()
            if not (www / "templates").is_dir():
                log.error("web page templates not found in %s (set USBPRINTD_WWW)", www)
            self._app = build_app(self.core, lambda: self.settings, www)
        return self._app

    def reload(self) -> None:
        self._settings_changed(self.core.registry)

    def _settings_changed(self, registry: Registry) -> None:
        new = registry.config.settings
        if new is self.settings:
            return
        old, self.settings = self.settings, new
        if (old.web_listen, old.web_port) != (new.web_listen, new.web_port):
            if old.web_port and new.web_port:
                log.info("web page moves to %s:%d", new.web_listen or "*", new.web_port)
            self._close()
            self._listen()

    def _listen(self) -> None:
        self._retry = None
        settings = self.settings
        if not settings.web_port:
            log.info("web page off (web_port 0)")
            return
        app = self._build_app()  # first: it keeps OpenSSL out before the server's imports
        from usbprintd.web.server import WebServer

        try:
            self._server = WebServer(app.wsgi, settings.web_listen, settings.web_port)
        except OSError as err:
            log.error("web page cannot listen on %s:%d: %s (retrying every %.0f s)",
                      settings.web_listen or "*", settings.web_port, err.strerror or err,
                      BIND_RETRY_SECONDS)
            self._retry = self.core.loop.call_later(BIND_RETRY_SECONDS, self._listen)
            return
        self._server.start()
        log.info("web page: %s (login: %s)", self._server.url, _login_hint(settings))

    def _close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.stop)


def _login_hint(settings: GlobalSettings) -> str:
    if settings.auth == "none":
        return "none needed on loopback"
    if settings.auth == "rpcd":
        return "a router account, e.g. root with the router's password"
    if not settings.password_hash:
        return "no password set yet: run 'usbprintd set-password'"
    return "the configured password ('usbprintd set-password' changes it)"


def create_service(core: Core) -> WebService:
    return WebService(core)
