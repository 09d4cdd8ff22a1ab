"""The bottle application: the HTML pages and the JSON API under /api/ that they use.

Runs in the web server's threads. It never touches the registry directly: reads go through
`Core.call(lambda registry: registry.snapshot())` (a plain copy made on the loop thread),
changes through the registry's own validated commands. The API is documented in docs/api.md.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import bottle
from bottle import HTTPError, HTTPResponse, request

from usbprintd import __version__
from usbprintd.config import GlobalSettings, validate_global_form, validate_printer_form
from usbprintd.core import Core
from usbprintd.usb.ieee1284 import make_and_model, parse_device_id
from usbprintd.web.auth import (
    COOKIE_NAME,
    SESSION_MAX_SECONDS,
    AuthUnavailable,
    Gatekeeper,
    Session,
    Throttled,
)
from usbprintd.web.firmware import FirmwareError, FirmwareStore, known_models
from usbprintd.web.limits import content_length, with_body_limits

log = logging.getLogger(__name__)

PRINTER_FIELDS = ("enabled", "name", "port", "bind", "bidirectional", "firmware", "mdns")
SETTINGS_FIELDS = ("autoadd", "base_port", "queue_limit", "idle_timeout", "drain_grace",
                   "mdns", "log_level")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_ERRORS = {  # what the login page may show after a plain form post (no free text)
    "denied": "wrong user name or password",
    "empty": "enter the password",
    "throttled": "too many failed logins; wait a minute and try again",
    "busy": "the router is busy checking other logins; try again in a moment",
    "unavailable": "logging in is not possible right now; see the router's log",
}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
EVENTS_DEFAULT = 200
STATIC_TYPES = {".css": "text/css; charset=UTF-8", ".js": "text/javascript; charset=UTF-8",
                ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json"}

SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("Cache-Control", "no-store"),
)


class CoreUnavailable(Exception):
    """The event loop did not answer (daemon stopping or stuck)."""


def json_response(data: Any, status: int = 200, **headers: str) -> HTTPResponse:
    body = json.dumps(data, separators=(",", ":"))
    return HTTPResponse(body, status, {"Content-Type": "application/json", **headers})


def api_error(status: int, message: str, fields: dict[str, str] | None = None,
              **headers: str) -> HTTPResponse:
    data: dict[str, Any] = {"error": message}
    if fields:
        data["fields"] = fields
    return json_response(data, status, **headers)


def with_security_headers(app: Callable[..., Any]) -> Callable[..., Any]:
    """WSGI middleware: every response, errors and static files included, gets the headers."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [h for h in SECURITY_HEADERS if h[0].lower() not in present]
            return start_response(status, headers + extra, exc_info)

        return app(environ, start)

    return wsgi


def find_www() -> Path:
    """Templates and static files: $USBPRINTD_WWW, the router install, or the source tree."""
    import os

    configured = os.environ.get("USBPRINTD_WWW")
    if configured:
        return Path(configured)
    installed = Path("/usr/share/usbprintd/www")
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / "www"


def _form_value(value: Any) -> str:
    """JSON and form values to the UCI text the registry validates ('1'/'0' for booleans)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value  # config.py refuses what UCI cannot store (line breaks, control characters)
    raise ValueError("must be text, a number or a boolean")


def _as_form_text(values: dict[str, Any]) -> dict[str, Any]:
    """Values as a form shows them: 300.0 seconds as '300'; booleans stay for checkboxes."""
    return {key: int(value) if isinstance(value, float) and value.is_integer() else value
            for key, value in values.items()}


def printer_model(printer: dict[str, Any]) -> str:
    """What the printer is: what a plugged-in printer says about itself (its IEEE 1284 device
    ID, else its USB strings: the name the USB layer gives it); for one that is not, what its
    section remembers of a USB printer (autoadd saves the make and model as its name). A
    printer known only by its device path has no model."""
    usb, settings = printer["usb"], printer["settings"]
    seen = make_and_model(parse_device_id(usb.get("device_id", "")),
                          usb.get("manufacturer", ""), usb.get("product", ""))
    if seen:
        return seen
    usb_id = settings["usb_id"] or usb.get("usb_id", "")
    if not usb_id:
        return ""
    return str(settings["name"] or f"USB printer {usb_id}")


def _with_model(printer: dict[str, Any]) -> dict[str, Any]:
    return {**printer, "model": printer_model(printer)}


def _loopback_host(host_header: str) -> bool:
    try:
        host = urlsplit(f"//{host_header}").hostname or ""
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address, or a malformed Host header
        return False


def _local_path(target: str) -> str:
    """Only a path on this site may follow a login (no open redirect; no control characters,
    which a Location header cannot carry and browsers drop: '/', tab, '/host' is '//host')."""
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isprintable()):
        return target
    return "/"


class WebApp:
    def __init__(self, core: Core, settings: Callable[[], GlobalSettings], www: Path) -> None:
        self.core = core
        self.settings = settings
        self.www = www
        self.gate = Gatekeeper(settings)
        self.app = bottle.Bottle(catchall=True)
        self.app.default_error_handler = self._error_page  # type: ignore[method-assign]
        self.app.install(self._report_failures)
        self._templates: dict[str, bottle.SimpleTemplate] = {}
        self._routes()
        self.wsgi = with_security_headers(with_body_limits(self.app))

    # --- plumbing ------------------------------------------------------------------------------

    def _routes(self) -> None:
        page, api, route = self._page, self._api, self.app.route
        route("/", "GET", page(self.status_page))
        route("/printers/<section>", "GET", page(self.printer_page))
        route("/firmware", "GET", page(self.firmware_page))
        route("/settings", "GET", page(self.settings_page))
        route("/log", "GET", page(self.log_page))
        route("/login", "GET", self.login_page)
        route("/static/<name>", "GET", self.static)
        route("/favicon.ico", "GET", lambda: self.static("favicon.svg"))
        route("/api/login", "POST", self.api_login)
        route("/api/session", "GET", self.api_session)
        route("/api/logout", "POST", api(self.api_logout, changes=False))
        route("/api/printers", "GET", api(self.api_printers))
        route("/api/printers/<section>", "GET", api(self.api_printer))
        route("/api/printers/<section>", "POST", api(self.api_update_printer))
        route("/api/printers/<section>", "DELETE", api(self.api_forget_printer))
        route("/api/firmware", "GET", api(self.api_firmware))
        route("/api/firmware/<name>", "PUT", api(self.api_upload_firmware))
        route("/api/firmware/<name>", "DELETE", api(self.api_delete_firmware))
        route("/api/settings", "GET", api(self.api_settings))
        route("/api/settings", "POST", api(self.api_update_settings))
        route("/api/events", "GET", api(self.api_events))

    @staticmethod
    def _report_failures(callback: Callable[..., Any]) -> Callable[..., Any]:
        """bottle plugin: a failure becomes a logged 500 (or a 503 if the core is away)."""

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except HTTPResponse:
                raise
            except CoreUnavailable:
                return api_error(503, "the daemon is busy or stopping; try again")
            except Exception:
                log.exception("web: %s %s failed", request.method, request.path)
                return api_error(500, "internal error (see the daemon's log)")

        return wrapper

    def _error_page(self, error: HTTPError) -> str:
        if request.path.startswith("/api/"):
            bottle.response.content_type = "application/json"
            message = error.body if isinstance(error.body, str) and error.body else error.status
            return json.dumps({"error": message})
        bottle.response.content_type = "text/html; charset=UTF-8"
        return self._render("error", title=error.status_line, message=str(error.body or ""),
                            session=None, csrf="")

    def _call(self, function: Callable[[Any], Any]) -> Any:
        try:
            return self.core.call(function)
        except (TimeoutError, RuntimeError) as err:
            raise CoreUnavailable(str(err)) from None

    def _client(self) -> str:
        # REMOTE_ADDR only: X-Forwarded-For is the client's to forge.
        return str(request.environ.get("REMOTE_ADDR", ""))

    def _cookie_sid(self) -> str | None:
        return request.get_cookie(COOKIE_NAME) or None

    def _host_allowed(self) -> bool:
        """With auth 'none' only loopback host names are served (DNS rebinding)."""
        return self.gate.mode != "none" or _loopback_host(request.get_header("Host", ""))

    def _same_origin(self) -> bool:
        origin = request.get_header("Origin")
        if not origin or origin == "null":
            return origin is None
        try:
            return urlsplit(origin).netloc == request.get_header("Host", "")
        except ValueError:  # a malformed Origin header
            return False

    def _session(self) -> Session | None:
        return self.gate.session(self._cookie_sid())

    def _api(self, handler: Callable[..., Any], changes: bool = True) -> Callable[..., Any]:
        """An API endpoint: login required; every unsafe method needs the CSRF token, and
        one that `changes` something also write access (logging out does not: every account
        may end its own session)."""

        @functools.wraps(handler)
        def guarded(**kwargs: Any) -> Any:
            if not self._host_allowed():
                return api_error(403, "use a loopback address (http://127.0.0.1/) for this page")
            session = self._session()
            if session is None:
                return api_error(401, "login required")
            if request.method not in SAFE_METHODS:
                token = request.get_header(CSRF_HEADER) or self._form_token()
                if not self._same_origin():
                    return api_error(403, "request from another site refused")
                if not self.gate.csrf_valid(session, token):
                    return api_error(403, "missing or wrong CSRF token; reload the page")
                if changes and not session.can_write:
                    return api_error(403, "this account may look but not change anything")
            return handler(session=session, **kwargs)

        return guarded

    @staticmethod
    def _form_token() -> str | None:
        """The token of a plain HTML form post (never parse other bodies, e.g. uploads)."""
        if request.content_type.startswith("application/x-www-form-urlencoded"):
            return request.forms.getunicode(CSRF_FIELD)
        return None

    def _page(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def guarded(**kwargs: Any) -> Any:
            if not self._host_allowed():
                raise HTTPError(403, "Use a loopback address (http://127.0.0.1/) for this page.")
            session = self._session()
            if session is None:
                bottle.redirect("/login?next=" + quote(request.fullpath, safe="/"))
            return handler(session=session, **kwargs)

        return guarded

    def _render(self, name: str, session: Session | None, **values: Any) -> str:
        template = self._templates.get(name)
        if template is None:
            template = bottle.SimpleTemplate(name=name, lookup=[str(self.www / "templates")])
            self._templates[name] = template
        csrf = self.gate.csrf_token(session) if session else ""
        values.setdefault("csrf", csrf)
        return template.render(hostname=socket.gethostname(), session=session,
                               auth=self.gate.mode, version=__version__, **values)

    def _read_form(self, allowed: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
        """The request's fields (JSON object or form) as UCI text, and the fields refused
        outright (not editable here, or not a scalar); 400 if there is nothing at all."""
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            data = request.json
            if not isinstance(data, dict):
                raise api_error(400, "expected a JSON object")
        else:
            data = self._form_fields()
            data.pop(CSRF_FIELD, None)
        form: dict[str, str] = {}
        refused: dict[str, str] = {}
        for key, value in data.items():
            if key not in allowed:
                refused[key] = "unknown setting"
                continue
            try:
                form[key] = _form_value(value)
            except ValueError as err:
                refused[key] = str(err)
        if not form and not refused:
            raise api_error(400, "nothing to change")
        return form, refused

    @staticmethod
    def _form_fields() -> dict[str, Any]:
        """A url-encoded or multipart body's fields; 400 if they cannot be read (for malformed
        part headers bottle's multipart parser raises ValueError, UnicodeDecodeError included,
        and LookupError for an unknown charset, not its own 400)."""
        try:
            return {key: request.forms.getunicode(key) for key in request.forms}
        except (ValueError, LookupError):
            raise api_error(400, "the form data cannot be read") from None

    # --- pages ---------------------------------------------------------------------------------

    def status_page(self, session: Session) -> str:
        return self._render("status", session, title="Status", page="status")

    def printer_page(self, session: Session, section: str) -> str:
        printer = self._printer_snapshot(section)
        if printer is None:
            raise HTTPError(404, f"There is no printer '{section}'.")
        try:
            firmware = [blob.name for blob in self._firmware_store().blobs()]
        except FirmwareError:
            firmware = []  # the firmware page names the problem
        return self._render("printer", session, title=printer["name"], page="status",
                            printer=printer, settings=_as_form_text(printer["settings"]),
                            firmware_files=firmware)

    def firmware_page(self, session: Session) -> str:
        return self._render("firmware", session, title="Firmware", page="firmware",
                            max_bytes=self._firmware_store().max_bytes)

    def settings_page(self, session: Session) -> str:
        settings = self._call(lambda registry: registry.snapshot()["settings"])
        return self._render("settings", session, title="Settings", page="settings",
                            settings=_as_form_text(settings))

    def log_page(self, session: Session) -> str:
        return self._render("log", session, title="Log", page="log")

    def login_page(self) -> str:
        if not self._host_allowed():
            raise HTTPError(403, "Use a loopback address (http://127.0.0.1/) for this page.")
        target = _local_path(request.query.getunicode("next") or "/")
        if self._session() is not None:
            bottle.redirect(target)
        return self._render("login", None, title="Login", page="login", next=target,
                            error=LOGIN_ERRORS.get(request.query.get("error") or "", ""))

    def static(self, name: str) -> Any:
        mimetype = STATIC_TYPES.get(Path(name).suffix)
        if mimetype is None:
            raise HTTPError(404, "Not found")
        result = bottle.static_file(name, root=str(self.www / "static"), mimetype=mimetype)
        result.set_header("Cache-Control", "max-age=300")
        return result

    # --- session API ---------------------------------------------------------------------------

    def api_login(self) -> HTTPResponse:
        """POST /api/login: JSON (from the page's script) or a plain form (no script)."""
        is_json = (request.content_type or "").startswith("application/json")
        if not self._host_allowed():
            return api_error(403, "use a loopback address (http://127.0.0.1/) for this page")
        if not self._same_origin():
            return api_error(403, "cross-site login refused")
        if is_json:
            data = request.json
            if not isinstance(data, dict):
                return api_error(400, "expected a JSON object")
        else:
            data = self._form_fields()
        username = data.get("username") if isinstance(data.get("username"), str) else ""
        password = data.get("password")
        target = _local_path(str(data.get("next") or "/"))
        if not isinstance(password, str) or not password:
            return self._login_failed(is_json, 400, "empty", LOGIN_ERRORS["empty"], target)
        try:
            session = self.gate.login(self._client(), username, password)
        except Throttled as err:
            return self._login_failed(is_json, 429, err.code, str(err), target,
                                      **{"Retry-After": str(err.retry_after)})
        except AuthUnavailable as err:
            return self._login_failed(is_json, 503, "unavailable", str(err), target)
        if session is None:
            return self._login_failed(is_json, 401, "denied", LOGIN_ERRORS["denied"], target)
        if is_json:
            result = json_response(self._session_info(session))
        else:
            result = HTTPResponse("", 303, {"Location": target})
        result.set_cookie(COOKIE_NAME, session.sid, path="/", httponly=True,
                          samesite="strict", max_age=SESSION_MAX_SECONDS)
        return result

    def _login_failed(self, is_json: bool, status: int, code: str, message: str, target: str,
                      **headers: str) -> HTTPResponse:
        if is_json:
            return api_error(status, message, **headers)
        location = f"/login?next={quote(target, safe='/')}&error={code}"
        return HTTPResponse("", 303, {"Location": location, **headers})

    def _session_info(self, session: Session) -> dict[str, Any]:
        return {"user": session.user, "can_write": session.can_write, "auth": self.gate.mode,
                "csrf_token": self.gate.csrf_token(session)}

    def api_session(self) -> HTTPResponse:
        if not self._host_allowed():
            return api_error(403, "use a loopback address (http://127.0.0.1/) for this page")
        session = self._session()
        if session is None:
            return api_error(401, "login required")
        return json_response(self._session_info(session))

    def api_logout(self, session: Session) -> HTTPResponse:
        self.gate.logout(session)
        log.info("web: %s logged out", session.user)
        result = HTTPResponse("", 204)
        result.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return result

    # --- printers ------------------------------------------------------------------------------

    def _printer_snapshot(self, section: str) -> dict[str, Any] | None:
        printers = self._call(lambda registry: registry.snapshot()["printers"])
        return next((_with_model(p) for p in printers if p["section"] == section), None)

    def api_printers(self, session: Session) -> HTTPResponse:
        snapshot = self._call(lambda registry: registry.snapshot())
        return json_response({
            "hostname": socket.gethostname(), "time": time.time(),
            "config_error": snapshot["config_error"], "issues": snapshot["issues"],
            "printers": [_with_model(p) for p in snapshot["printers"]],
            "unserved_usb": snapshot["unserved_usb"],
        })

    def api_printer(self, session: Session, section: str) -> HTTPResponse:
        printer = self._printer_snapshot(section)
        if printer is None:
            return api_error(404, f"no printer '{section}'")
        return json_response({"printer": printer})

    def api_update_printer(self, session: Session, section: str) -> HTTPResponse:
        form, refused = self._read_form(PRINTER_FIELDS)

        def update(registry: Any) -> tuple[bool, dict[str, str]]:
            if registry.config.printer(section) is None:
                return False, {}
            if refused:  # report every problem at once, change nothing
                return True, {**validate_printer_form(registry.config, section, form)[1],
                              **refused}
            return True, registry.update_printer(section, form)

        exists, errors = self._call(update)
        if not exists:
            return api_error(404, f"no printer '{section}'")
        if refused:
            return api_error(400, "invalid settings", errors)
        if errors:
            return self._change_refused(errors)
        log.info("web: %s changed printer %s", session.user, section)
        return json_response({"printer": self._printer_snapshot(section)})

    @staticmethod
    def _change_refused(errors: dict[str, str]) -> HTTPResponse:
        """The registry's answer: per-field errors, or '_' when the store could not write."""
        if "_" in errors:
            return api_error(500, errors["_"])
        return api_error(400, "invalid settings", errors)

    def api_forget_printer(self, session: Session, section: str) -> HTTPResponse:
        def forget(registry: Any) -> tuple[bool, dict[str, str]]:
            if registry.config.printer(section) is None:
                return False, {}
            return True, registry.forget_printer(section)

        exists, errors = self._call(forget)
        if not exists:
            return api_error(404, f"no printer '{section}'")
        if "section" in errors:
            return api_error(409, errors["section"])
        if errors:
            return self._change_refused(errors)
        log.info("web: %s removed printer %s", session.user, section)
        return HTTPResponse("", 204)

    # --- firmware ------------------------------------------------------------------------------

    def _firmware_store(self) -> FirmwareStore:
        return FirmwareStore(self.settings().firmware_dir)

    def api_firmware(self, session: Session) -> HTTPResponse:
        store = self._firmware_store()
        try:
            blobs, problem = store.blobs(), ""
        except FirmwareError as err:
            blobs, problem = [], str(err)
        present = {blob.name for blob in blobs}
        models = [{**model, "present": model["file"] in present} for model in known_models()]
        return json_response({
            "directory": str(store.directory), "max_bytes": store.max_bytes,
            "files": [asdict(blob) for blob in blobs], "models": models, "problem": problem,
        })

    def api_upload_firmware(self, session: Session, name: str) -> HTTPResponse:
        store = self._firmware_store()
        length = content_length(request.environ)
        if not request.environ.get("CONTENT_LENGTH") or length is None:
            return api_error(411, "send the file with a Content-Length")
        try:  # the size was checked by limits.py; the server drops a body left unread
            blob = store.save(name, request.environ["wsgi.input"], length)
        except FirmwareError as err:
            return api_error(err.status, str(err))
        except OSError as err:
            log.error("web: firmware %s not stored: %s", name, err)
            return api_error(500, f"not stored: {err.strerror or err}")
        log.info("web: %s uploaded firmware %s (%d bytes)", session.user, blob.name, blob.size)
        self._call(lambda registry: registry.firmware_changed())
        return json_response({"file": asdict(blob)}, 201)

    def api_delete_firmware(self, session: Session, name: str) -> HTTPResponse:
        try:
            self._firmware_store().delete(name)
        except FirmwareError as err:
            return api_error(err.status, str(err))
        log.info("web: %s deleted firmware %s", session.user, name)
        self._call(lambda registry: registry.firmware_changed())
        return HTTPResponse("", 204)

    # --- settings and events -------------------------------------------------------------------

    def api_settings(self, session: Session) -> HTTPResponse:
        settings = self._call(lambda registry: registry.snapshot()["settings"])
        return json_response({"settings": settings, "editable": list(SETTINGS_FIELDS)})

    def api_update_settings(self, session: Session) -> HTTPResponse:
        form, refused = self._read_form(SETTINGS_FIELDS)
        if refused:
            return api_error(400, "invalid settings", {**validate_global_form(form)[1],
                                                       **refused})
        errors = self._call(lambda registry: registry.update_settings(form))
        if errors:
            return self._change_refused(errors)
        log.info("web: %s changed settings: %s", session.user, ", ".join(sorted(form)))
        return self.api_settings(session)

    def api_events(self, session: Session) -> HTTPResponse:
        try:
            limit = int(request.query.get("limit") or EVENTS_DEFAULT)
        except ValueError:
            return api_error(400, "limit must be a whole number")
        events = self.core.events.recent(max(1, min(limit, 1000)))
        return json_response({"events": [asdict(event) for event in events]})


def build_app(core: Core, settings: Callable[[], GlobalSettings], www: Path) -> WebApp:
    return WebApp(core, settings, www)
