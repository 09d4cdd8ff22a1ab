"""The daemon's web app in this process, over a real registry and file store in a scratch
directory: requests go straight into its WSGI callable, as the web service's server would
pass them, and the registry call runs on the caller's thread (there is no event loop)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

from usbprintd.eventlog import EventLog
from usbprintd.registry import Registry
from usbprintd.uci import FileStore
from usbprintd.web.app import WebApp, find_www

CONFIG = """\
config usbprintd 'main'
\toption auth 'none'
\toption web_listen '127.0.0.1'
\toption web_port '8631'
\toption firmware_dir '{firmware_dir}'
\toption mdns '0'

config printer 'a'
\toption name 'HP LaserJet 1018'
\toption usb_id '03f0:4117'
\toption serial 'SN1'
\toption port '9100'
\toption bidirectional '0'
\toption firmware 'sihp1018.dl'

config printer 'b'
\toption name 'Brother HL-L2350DW series'
\toption usb_id '04f9:0042'
\toption port '9101'
\toption bind '127.0.0.1'
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class DirectCore:
    """`Core.call` without the loop thread: the harness is the only thread."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.events = EventLog()

    def call(self, function: Any, timeout: float = 10.0) -> Any:
        return function(self.registry)


class InProcessWeb:
    """Printers 'a' and 'b' known by USB identity only (absent, so nothing is served), the
    page open on loopback without login, firmware_dir at <root>/etc/firmware."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path = root / "etc" / "config" / "usbprintd"
        self.firmware_dir = root / "etc" / "firmware"
        self.registry = Registry(FileStore(self.config_path))
        self.app = WebApp(DirectCore(self.registry), lambda: self.registry.config.settings,
                          find_www())
        self.csrf = ""

    def write_config(self) -> None:
        """The starting configuration file again (what the registry holds is unchanged)."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(CONFIG.format(firmware_dir=self.firmware_dir))

    def reset(self) -> None:
        """The starting configuration again, in the file and in the registry."""
        self.write_config()
        assert self.registry.reload()
        self.csrf = self.app.gate.csrf_token(self.app.gate.session(None))

    def request(self, method: str, raw_path: bytes, body: bytes = b"",
                content_type: str | None = None, token: bool = True) -> Reply:
        """`raw_path` as the server hands it over (URL-decoded bytes, as latin-1 text)."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": raw_path.decode("latin-1"),
            "HTTP_HOST": "127.0.0.1:8631", "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        }
        if token:
            environ["HTTP_X_CSRF_TOKEN"] = self.csrf
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        setup_testing_defaults(environ)
        started: list[tuple[str, list[tuple[str, str]]]] = []
        chunks = self.app.wsgi(environ, lambda status, headers, exc_info=None:
                               started.append((status, headers)))
        payload = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        status, headers = started[0]
        return Reply(int(status.split()[0]), dict(headers), payload)
