"""The real daemon with its web page on a free loopback port, and a small HTTP client for it.

Also a stand-in for the router's rpcd behind uhttpd's /ubus JSON-RPC endpoint: this machine
has no ubus, so auth 'rpcd' is exercised against `FakeRpcd`, which follows the behaviour of
rpcd's session object (openwrt/rpcd session.c) and uhttpd's ubus.c as described in
research §5 — it is a test double, not the real thing.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from daemon_process import DaemonProcess, free_port, global_section, printer_section

PASSWORD = "correct horse battery"


def password_hash(password: str = PASSWORD) -> str:
    from usbprintd.web.passwords import hash_password

    return hash_password(password)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass
class WebClient:
    """A browser-like client: keeps the session cookie and sends the CSRF token it was given."""

    port: int
    host: str = "127.0.0.1"
    source: str | None = None  # local address, to look like another client
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, csrf: bool = True) -> Reply:
        host = f"[{self.host}]" if ":" in self.host else self.host
        sent = {"Host": f"{host}:{self.port}", **(headers or {})}
        payload: bytes | None = raw
        if body is not None:
            payload = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            sent.setdefault("X-CSRF-Token", self.csrf)
        source = (self.source, 0) if self.source else None
        connection = http.client.HTTPConnection(self.host, self.port, timeout=15,
                                                source_address=source)
        try:
            connection.request(method, path, payload, sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        for cookie in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=-1" in cookie or "expires=Thu, 01 Jan 1970" in cookie or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def login(self, password: str = PASSWORD, username: str = "") -> Reply:
        reply = self.post("/api/login", {"username": username, "password": password})
        if reply.status == 200:
            self.csrf = reply.json["csrf_token"]
        return reply


@dataclass
class WebDaemon:
    daemon: DaemonProcess
    web_port: int
    workdir: Path

    def client(self, **kwargs: Any) -> WebClient:
        return WebClient(self.web_port, **kwargs)

    def logged_in(self) -> WebClient:
        client = self.client()
        assert client.login().status == 200
        return client

    @property
    def config(self) -> str:
        return self.daemon.config_path.read_text()


def web_config(web_port: int, printers: str, **global_options: str) -> str:
    options = {"web_listen": "127.0.0.1", "web_port": str(web_port), "auth": "password",
               "password_hash": password_hash()}
    options.update(global_options)
    return global_section(**options) + printers


def start_web_daemon(workdir: Path, printers: str = "", extra_env: dict[str, str] | None = None,
                     **global_options: str) -> WebDaemon:
    web_port = free_port()
    global_options.setdefault("firmware_dir", str(workdir / "firmware"))
    daemon = DaemonProcess(workdir, web_config(web_port, printers, **global_options), extra_env)
    daemon.start()
    daemon.wait_log(rf"web page: http://\S+:{web_port}/")
    return WebDaemon(daemon, web_port, workdir)


def spool_printer(workdir: Path, name: str, **options: str) -> tuple[str, Path, int]:
    """A virtual printer (a spool directory) on a free port: (config text, spool, port)."""
    spool = workdir / f"spool-{name}"
    spool.mkdir()
    port = free_port()
    return printer_section(name, spool, port, **options), spool, port


def uci_option(config_text: str, section: str, option: str) -> str | None:
    """The value of one option in a UCI file's text (None if the option is absent)."""
    match = re.search(rf"config \w+ '?{section}'?\n((?:[ \t]+.*\n?)*)", config_text)
    if not match:
        return None
    for line in match.group(1).splitlines():
        found = re.match(rf"\s+option {option} '?(.*?)'?\s*$", line)
        if found:
            return found.group(1)
    return None


# --- rpcd stand-in ---------------------------------------------------------------------------


@dataclass
class FakeAccount:
    password: str
    groups_read: set[str]
    groups_write: set[str]


class FakeRpcd:
    """Stand-in for uhttpd-mod-ubus + rpcd's session object (not the real rpcd).

    Mirrors what the page relies on: `session.login` with the null session returns
    ubus_rpc_session (bad credentials: ubus status 6, permission denied); every other call is
    checked against the caller's session and fails with JSON-RPC error -32002 when the
    session does not exist; uhttpd adds `ubus_rpc_session` to the arguments itself and refuses
    requests that carry it; `session.access` with scope 'access-group' answers {access: bool};
    `session.destroy` ends the session.
    """

    NULL = "0" * 32

    def __init__(self, accounts: dict[str, FakeAccount]) -> None:
        self.accounts = accounts
        self.sessions: dict[str, str] = {}  # sid -> username
        self.calls: list[tuple[str, str, str]] = []  # (sid, object, method)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                reply = fake.handle(request)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ubus"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRpcd:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        base = {"jsonrpc": "2.0", "id": request.get("id")}
        sid, obj, method, args = request["params"]
        self.calls.append((sid, obj, method))
        if "ubus_rpc_session" in args:
            return {**base, "error": {"code": -32602, "message": "Invalid parameters"}}
        if obj != "session":
            return {**base, "error": {"code": -32000, "message": "Object not found"}}
        if method == "login" and sid == self.NULL:
            account = self.accounts.get(args.get("username", ""))
            if account is None or account.password != args.get("password"):
                return {**base, "result": [6]}
            new_sid = secrets.token_hex(16)
            self.sessions[new_sid] = args["username"]
            return {**base, "result": [0, {"ubus_rpc_session": new_sid, "timeout": 300,
                                           "expires": 300, "acls": {},
                                           "data": {"username": args["username"]}}]}
        if sid not in self.sessions:
            return {**base, "error": {"code": -32002, "message": "Access denied"}}
        account = self.accounts[self.sessions[sid]]
        if method == "access" and args.get("scope") == "access-group":
            groups = account.groups_write if args.get("function") == "write" else (
                account.groups_read | account.groups_write)
            return {**base, "result": [0, {"access": args.get("object") in groups}]}
        if method == "destroy":
            del self.sessions[sid]
            return {**base, "result": [0]}
        return {**base, "error": {"code": -32601, "message": "Method not found"}}
