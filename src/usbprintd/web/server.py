"""The page's HTTP server: stdlib wsgiref, one thread per connection, in its own thread.

The print path never waits for it: it only talks to the core through `Core.call`.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30  # a silent client loses its thread instead of keeping it
POLL_INTERVAL_SECONDS = 0.2
MAX_CONNECTIONS = 16  # more wait in the listen backlog: a flood cannot eat the router's RAM
LISTEN_BACKLOG = 64


class _LoggingServerHandler(ServerHandler):
    """Report application errors through logging instead of raw stderr tracebacks."""

    server_software = "usbprintd"

    def log_exception(self, exc_info: Any) -> None:
        log.error("web request failed", exc_info=exc_info)


class _RequestHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS
    server_version = "usbprintd"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        """wsgiref's handler, with our error reporting (and no 'Server' version banner)."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _LoggingServerHandler(self.rfile, self.wfile, self.get_stderr(),
                                        self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["SERVER_SOFTWARE"] = "usbprintd"
        return environ


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, at most MAX_CONNECTIONS at a time."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # the accepting thread waits here while every slot is busy
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def server_bind(self) -> None:
        """Bind without http.server's reverse DNS lookup of the listen address."""
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port
        self.setup_environ()


class _Ipv6Server(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


def _make_server(host: str, port: int) -> _ThreadingWSGIServer:
    """IPv4 or IPv6 by the address; empty means every address (dual-stack when possible)."""
    if not host:
        try:
            return _Ipv6Server(("::", port), _RequestHandler)
        except OSError:
            host = "0.0.0.0"
    server_class = _Ipv6Server if ":" in host else _ThreadingWSGIServer
    return server_class((host, port), _RequestHandler)


class WebServer:
    """Serves `app` on host:port from a background thread until `stop()`."""

    def __init__(self, app: Callable[..., Any], host: str, port: int) -> None:
        self._server = _make_server(host, port)
        self._server.set_app(app)
        self.host = self._server.server_address[0]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._serve, name=f"web:{port}", daemon=True)

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.serve_forever(poll_interval=POLL_INTERVAL_SECONDS)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop accepting and wait for the serving thread (requests in flight may finish)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        else:
            self._server.server_close()
