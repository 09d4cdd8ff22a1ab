"""The page's HTTP server: stdlib wsgiref, one thread per connection, in its own thread.

The print path never waits for it: it only talks to the core through `Core.call`.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from usbprintd.web.limits import content_length

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30  # a silent client loses its thread instead of keeping it
POLL_INTERVAL_SECONDS = 0.2
MAX_CONNECTIONS = 16  # more wait in the listen backlog: a flood cannot eat the router's RAM
LISTEN_BACKLOG = 64
DROP_MAX_BYTES = 16 * 1024 * 1024  # after an answer, drop at most this much of an unread body
DROP_MAX_SECONDS = 10.0  # ... for at most this long, then close
DROP_CHUNK = 64 * 1024


class _RequestBody:
    """wsgi.input that ends at Content-Length and knows how much of the body was left unread.

    `expected` is None when the length is unknown (chunked, or a malformed Content-Length);
    such a body is never read by the application (limits.py refuses it).
    """

    def __init__(self, stream: Any, expected: int | None) -> None:
        self._stream = stream
        self.expected = expected
        self.consumed = 0

    @property
    def left_unread(self) -> bool:
        return self.expected is None or self.consumed < self.expected

    def _allowance(self, size: int | None) -> int:
        remaining = max(0, (self.expected or 0) - self.consumed)
        return remaining if size is None or size < 0 else min(size, remaining)

    def read(self, size: int | None = -1) -> bytes:
        allowance = self._allowance(size)
        data = self._stream.read(allowance) if allowance else b""
        self.consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        allowance = self._allowance(size)
        data = self._stream.readline(allowance) if allowance else b""
        self.consumed += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


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
        environ = self.get_environ()
        body = _RequestBody(self.rfile, _declared_length(environ))
        environ["wsgi.input"] = body
        handler = _LoggingServerHandler(body, self.wfile, self.get_stderr(), environ,
                                        multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())
        if body.left_unread:
            self._drop_unread_body(body)

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["SERVER_SOFTWARE"] = "usbprintd"
        return environ

    def _drop_unread_body(self, body: _RequestBody) -> None:
        """A "lingering close": the answer went out before the body was read (it was refused
        by its headers); drop what the client still sends, for a bounded time and amount, so
        a client that writes its whole body before reading sees the answer, not a reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # the answer is complete
        except OSError:
            return
        limit = DROP_MAX_BYTES
        if body.expected is not None:
            limit = min(limit, body.expected - body.consumed)
        deadline = time.monotonic() + DROP_MAX_SECONDS
        dropped = 0
        while dropped < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(DROP_CHUNK, limit - dropped))
            except OSError:  # timed out or reset by the client
                break
            if not chunk:
                break
            dropped += len(chunk)


def _declared_length(environ: dict[str, Any]) -> int | None:
    """The body's length by its headers: 0 without one, None when it cannot be known."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").strip():
        return None
    return content_length(environ)


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
