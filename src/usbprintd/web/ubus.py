"""rpcd's session object, reached over ubus: login, access checks and logout for auth 'rpcd'.

rpcd checks the router's own accounts (`/etc/config/rpcd` login sections, `$p$root` meaning the
root password in /etc/shadow) and grants the ACL groups of `/usr/share/rpcd/acl.d/*.json`. The
page is allowed for a session that has the `usbprintd` access group (read: look, write: change).

Two transports, in this order: the python3-ubus binding when it is installed (a direct ubus
call as root), otherwise uhttpd's JSON-RPC endpoint `/ubus` on the router itself, where the
password travels in a request body rather than on a command line (`ubus call` would put it in
/proc/<pid>/cmdline for every local user to read). USBPRINTD_UBUS_URL overrides the endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

NULL_SESSION = "0" * 32
DEFAULT_URL = "http://127.0.0.1/ubus"
ACCESS_GROUP = "usbprintd"
SESSION_SECONDS = 3600
UBUS_TIMEOUT = 10.0

# ubus status codes (libubus.h) and uhttpd's JSON-RPC error codes worth telling apart
UBUS_STATUS_PERMISSION_DENIED = 6
JSONRPC_ACCESS_DENIED = -32002


class UbusError(Exception):
    """A ubus call failed; `denied` says whether it was refused rather than broken."""

    def __init__(self, message: str, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


class UbusTransport(Protocol):
    description: str

    def call(self, sid: str, obj: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Call `obj.method(args)` as session `sid`; returns the reply (or {})."""


class HttpJsonRpc:
    """uhttpd-mod-ubus: POST {"method":"call","params":[sid, obj, method, args]} to /ubus."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = UBUS_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"ubus endpoint must be an http:// URL, not '{url}'")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path or "/ubus"
        self.timeout = timeout
        self.description = f"JSON-RPC {url}"
        self._next_id = 0
        self._lock = threading.Lock()

    def call(self, sid: str, obj: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        import http.client

        with self._lock:
            self._next_id += 1
            request_id = self._next_id
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "call",
                           "params": [sid, obj, method, args]})
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("POST", self.path, body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read(1 << 20)
        except OSError as err:
            raise UbusError(f"{self.description}: {err}") from None
        finally:
            connection.close()
        if response.status != 200:
            raise UbusError(f"{self.description}: HTTP {response.status}")
        return _parse_jsonrpc_reply(raw, f"{obj}.{method}")


def _parse_jsonrpc_reply(raw: bytes, what: str) -> dict[str, Any]:
    try:
        reply = json.loads(raw)
    except ValueError:
        raise UbusError(f"{what}: reply is not JSON") from None
    if not isinstance(reply, dict):
        raise UbusError(f"{what}: unexpected reply")
    error = reply.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise UbusError(f"{what}: {error.get('message', 'error')} ({code})",
                        denied=code == JSONRPC_ACCESS_DENIED)
    result = reply.get("result")
    if not isinstance(result, list) or not result or not isinstance(result[0], int):
        raise UbusError(f"{what}: unexpected reply")
    if result[0] != 0:
        raise UbusError(f"{what}: ubus status {result[0]}",
                        denied=result[0] == UBUS_STATUS_PERMISSION_DENIED)
    data = result[1] if len(result) > 1 else {}
    return data if isinstance(data, dict) else {}


class PythonUbus:
    """The python3-ubus binding: one process-wide connection, so calls are serialised."""

    description = "python3-ubus"

    def __init__(self, module: Any) -> None:
        self._ubus = module
        self._lock = threading.Lock()

    def call(self, sid: str, obj: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        # Direct ubus calls carry the session as an argument (uhttpd adds it for /ubus).
        message = dict(args)
        if sid != NULL_SESSION:
            message["ubus_rpc_session"] = sid
        with self._lock:
            try:
                if not self._ubus.get_connected():
                    self._ubus.connect()
                replies = self._ubus.call(obj, method, message, timeout=int(UBUS_TIMEOUT * 1000))
            except (RuntimeError, TypeError, OSError) as err:
                text = str(err)  # e.g. "ubus error occured: Permission denied"
                raise UbusError(f"{obj}.{method}: {text}",
                                denied="Permission denied" in text) from None
        return replies[0] if replies and isinstance(replies[0], dict) else {}


def default_transport() -> UbusTransport:
    url = os.environ.get("USBPRINTD_UBUS_URL")
    if url:
        return HttpJsonRpc(url)
    try:
        import ubus  # type: ignore[import-not-found]
    except ImportError:
        return HttpJsonRpc(DEFAULT_URL)
    return PythonUbus(ubus)


@dataclass(frozen=True)
class RpcdLogin:
    sid: str
    username: str
    expires_in: int


class RpcdSessions:
    """The few rpcd session calls the page needs."""

    def __init__(self, transport: UbusTransport, group: str = ACCESS_GROUP) -> None:
        self.transport = transport
        self.group = group

    def login(self, username: str, password: str) -> RpcdLogin | None:
        """A new rpcd session, or None when rpcd refuses the credentials."""
        try:
            reply = self.transport.call(NULL_SESSION, "session", "login", {
                "username": username, "password": password, "timeout": SESSION_SECONDS})
        except UbusError as err:
            if err.denied:
                return None
            raise
        sid = reply.get("ubus_rpc_session")
        if not isinstance(sid, str) or not sid:
            raise UbusError("session.login: no session in the reply")
        data = reply.get("data") if isinstance(reply.get("data"), dict) else {}
        name = data.get("username") if isinstance(data.get("username"), str) else username
        return RpcdLogin(sid, name, int(reply.get("timeout") or SESSION_SECONDS))

    def allowed(self, sid: str, function: str) -> bool:
        """Does session `sid` exist and hold `function` ('read' or 'write') of our group?"""
        try:
            reply = self.transport.call(sid, "session", "access", {
                "scope": "access-group", "object": self.group, "function": function})
        except UbusError as err:
            if err.denied:
                return False
            raise
        return reply.get("access") is True

    def destroy(self, sid: str) -> None:
        try:
            self.transport.call(sid, "session", "destroy", {})
        except UbusError as err:
            log.debug("session.destroy: %s", err)
