"""Who may use the page: login backends, sessions, CSRF tokens and the login rate limit.

Three backends, chosen by the global option `auth`:
- 'rpcd': the router's own accounts through rpcd's session object (see `ubus.py`); the
  session lives in rpcd and our cookie carries its id.
- 'password': one owner password, hashed with PBKDF2 in UCI (`usbprintd set-password`);
  sessions live in this process's memory.
- 'none': no login, accepted only while the page listens on loopback (config.py enforces it);
  requests must then name a loopback host, so a DNS-rebinding page cannot reach it.

Every state-changing request carries a CSRF token: an HMAC of the session id under a secret
made at start-up, so no token store is needed and a restart invalidates all tokens.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

from usbprintd.config import GlobalSettings
from usbprintd.web.passwords import verify_password
from usbprintd.web.ubus import RpcdSessions, UbusError, default_transport

log = logging.getLogger(__name__)

COOKIE_NAME = "usbprintd_session"
SESSION_IDLE_SECONDS = 3600
SESSION_MAX_SECONDS = 12 * 3600
MAX_SESSIONS = 32
RPCD_RECHECK_SECONDS = 10.0
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_SECONDS = 60.0
THROTTLE_TABLE_SIZE = 1024
MAX_CONCURRENT_LOGINS = 2  # password checks at once (PBKDF2: seconds of CPU on a router)
BUSY_RETRY_SECONDS = 1
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Session:
    sid: str
    user: str
    can_write: bool


class AuthUnavailable(Exception):
    """The backend cannot check credentials now (no password set, rpcd unreachable)."""


class Backend(Protocol):
    mode: str

    def login(self, username: str, password: str) -> Session | None: ...

    def session(self, sid: str) -> Session | None: ...

    def logout(self, sid: str) -> None: ...


class LocalSessions:
    """Sessions kept in RAM: an idle limit, an absolute limit, and a bounded count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # sid -> (user, created, last seen), oldest first
        self._sessions: OrderedDict[str, tuple[str, float, float]] = OrderedDict()

    def create(self, user: str) -> Session:
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._sessions[sid] = (user, now, now)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return Session(sid, user, can_write=True)

    def get(self, sid: str) -> Session | None:
        now = self._clock()
        with self._lock:
            entry = self._sessions.get(sid)
            if entry is None:
                return None
            user, created, seen = entry
            if now - seen > SESSION_IDLE_SECONDS or now - created > SESSION_MAX_SECONDS:
                del self._sessions[sid]
                return None
            self._sessions[sid] = (user, created, now)
        return Session(sid, user, can_write=True)

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)


class PasswordBackend:
    """auth 'password': the owner's password against password_hash of the global section."""

    mode = "password"
    user = "admin"

    def __init__(self, password_hash: Callable[[], str]) -> None:
        self._password_hash = password_hash
        self._sessions = LocalSessions()

    def login(self, username: str, password: str) -> Session | None:
        stored = self._password_hash()
        if not stored:
            raise AuthUnavailable("no password is set: run 'usbprintd set-password' on the router")
        if not verify_password(password, stored):
            return None
        return self._sessions.create(self.user)

    def session(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    def logout(self, sid: str) -> None:
        self._sessions.drop(sid)


class RpcdBackend:
    """auth 'rpcd': rpcd owns the session; we remember briefly what it told us.

    A session is re-checked with rpcd at most every few seconds (which also keeps rpcd's
    sliding expiry going while the page is open); a logged-out id is never accepted again.
    """

    mode = "rpcd"

    def __init__(self, rpcd: RpcdSessions, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpcd = rpcd
        self._clock = clock
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self._ended: OrderedDict[str, float] = OrderedDict()

    def login(self, username: str, password: str) -> Session | None:
        try:
            login = self.rpcd.login(username or "root", password)
            if login is None:
                return None
            session = self._check(login.sid, login.username)
        except UbusError as err:
            raise AuthUnavailable(f"rpcd is not reachable: {err}") from None
        if session is None:
            log.warning("web login: '%s' has no access to the '%s' ACL group", username,
                        self.rpcd.group)
            self.rpcd.destroy(login.sid)
        return session

    def _check(self, sid: str, user: str) -> Session | None:
        if self.rpcd.allowed(sid, "write"):
            session = Session(sid, user, can_write=True)
        elif self.rpcd.allowed(sid, "read"):
            session = Session(sid, user, can_write=False)
        else:
            return None
        with self._lock:
            self._known[sid] = (session, self._clock())
            self._known.move_to_end(sid)
            while len(self._known) > MAX_SESSIONS:
                self._known.popitem(last=False)
        return session

    def session(self, sid: str) -> Session | None:
        with self._lock:
            if sid in self._ended:
                return None
            known = self._known.get(sid)
        if known is not None and self._clock() - known[1] < RPCD_RECHECK_SECONDS:
            return known[0]
        user = known[0].user if known else "router account"
        try:
            session = self._check(sid, user)
        except UbusError as err:
            log.warning("web: cannot check a session with rpcd: %s", err)
            return None
        if session is None:
            with self._lock:
                self._known.pop(sid, None)
        return session

    def logout(self, sid: str) -> None:
        with self._lock:
            self._known.pop(sid, None)
            self._ended[sid] = self._clock()
            while len(self._ended) > MAX_SESSIONS * 4:
                self._ended.popitem(last=False)
        self.rpcd.destroy(sid)


class NoneBackend:
    """auth 'none' (loopback only): everyone is the owner."""

    mode = "none"

    def login(self, username: str, password: str) -> Session | None:
        return Session(ANONYMOUS, "local", can_write=True)

    def session(self, sid: str) -> Session | None:
        return Session(ANONYMOUS, "local", can_write=True)

    def logout(self, sid: str) -> None:
        pass


class LoginThrottle:
    """At most LOGIN_FAILURES_ALLOWED failed logins per client address per window.

    An attempt counts from the moment it starts (`reserve`) and stays counted unless it
    succeeds, so attempts that run at the same time cannot all pass the check before the
    first of them fails.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._attempts.get(client, []) if now - t < LOGIN_WINDOW_SECONDS]
        if times:
            self._attempts[client] = times
        else:
            self._attempts.pop(client, None)
        return times

    @staticmethod
    def _wait(times: list[float], now: float) -> int:
        if len(times) < LOGIN_FAILURES_ALLOWED:
            return 0
        return max(1, int(times[0] + LOGIN_WINDOW_SECONDS - now + 0.999))

    def reserve(self, client: str) -> float:
        """Count an attempt of `client` as failed until it succeeds; Throttled if none is left.
        Returns the attempt's mark for `cancel`."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            wait = self._wait(times, now)
            if wait:
                raise Throttled(wait)
            times.append(now)
            self._attempts[client] = times
            self._attempts.move_to_end(client)
            while len(self._attempts) > THROTTLE_TABLE_SIZE:
                self._attempts.popitem(last=False)
        return now

    def cancel(self, client: str, mark: float) -> None:
        """The attempt could not be checked at all (the backend is unavailable)."""
        with self._lock:
            times = self._attempts.get(client, [])
            if mark in times:
                times.remove(mark)
            if not times:
                self._attempts.pop(client, None)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._attempts.pop(client, None)


class Throttled(Exception):
    code = "throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginsBusy(Throttled):
    """MAX_CONCURRENT_LOGINS password checks are running: a flood cannot pin the CPU."""

    code = "busy"

    def __init__(self) -> None:
        Exception.__init__(self, "the router is busy checking other logins; try again in a "
                                 "moment")
        self.retry_after = BUSY_RETRY_SECONDS


def make_backend(settings: GlobalSettings, password_hash: Callable[[], str]) -> Backend:
    if settings.auth == "none":
        return NoneBackend()
    if settings.auth == "password":
        return PasswordBackend(password_hash)
    return RpcdBackend(RpcdSessions(default_transport()))


class Gatekeeper:
    """The page's single entry point for authentication decisions."""

    def __init__(self, settings: Callable[[], GlobalSettings]) -> None:
        self._settings = settings
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self.throttle = LoginThrottle()
        self._checks = threading.BoundedSemaphore(MAX_CONCURRENT_LOGINS)

    @property
    def backend(self) -> Backend:
        """The backend for the current `auth` option (a change drops every session)."""
        mode = self._settings().auth
        with self._lock:
            if self._backend is None or self._backend.mode != mode:
                self._backend = make_backend(self._settings(),
                                             lambda: self._settings().password_hash)
            return self._backend

    @property
    def mode(self) -> str:
        return self.backend.mode

    def session(self, sid: str | None) -> Session | None:
        backend = self.backend
        if backend.mode == "none":
            return backend.session("")
        return backend.session(sid) if sid else None

    def login(self, client: str, username: str, password: str) -> Session | None:
        """Check credentials: Throttled if `client` has no attempt left, LoginsBusy if
        enough other checks are running, AuthUnavailable if the backend cannot check."""
        if not self._checks.acquire(blocking=False):
            raise LoginsBusy()
        try:
            mark = self.throttle.reserve(client)
            try:
                session = self.backend.login(username, password)
            except AuthUnavailable:
                self.throttle.cancel(client, mark)
                raise
        finally:
            self._checks.release()
        if session is None:
            log.warning("web: failed login from %s", client)
        else:
            self.throttle.succeeded(client)
            log.info("web: %s logged in from %s", session.user, client)
        return session

    def logout(self, session: Session) -> None:
        self.backend.logout(session.sid)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, session.sid.encode(), sha256).hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")
