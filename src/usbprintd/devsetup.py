"""The development default behind `make run`: a local state directory with a virtual printer."""

from __future__ import annotations

import errno
import logging
import socket
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

CONFIG_NAME = "usbprintd.conf"
PASSWORD_NAME = "password"
FIRST_PRINTER_PORT = 9100
FIRST_WEB_PORT = 8631


def first_free_port(host: str, start: int) -> int:
    """The first port from `start` on that nothing listens on (so `make run` never collides)."""
    for port in range(start, start + 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    continue
                raise
            return port
    raise RuntimeError(f"no free port in {start}-{start + 99} on {host}")


def prepare_state_dir(state_dir: Path) -> Path:
    """Create the state directory and its config on first run; later runs reuse them."""
    state_dir = state_dir.resolve()
    spool_dir, firmware_dir = state_dir / "spool", state_dir / "firmware"
    for directory in (state_dir, spool_dir, firmware_dir):
        directory.mkdir(parents=True, exist_ok=True)
    config = state_dir / CONFIG_NAME
    if not config.exists():
        template = resources.files("usbprintd").joinpath("data/development.conf").read_text()
        printer_port = first_free_port("127.0.0.1", FIRST_PRINTER_PORT)
        web_port = first_free_port("127.0.0.1", FIRST_WEB_PORT)
        config.write_text(template.format(
            printer_port=printer_port, web_port=web_port,
            spool_dir=spool_dir, firmware_dir=firmware_dir,
        ))
        if printer_port != FIRST_PRINTER_PORT:
            log.warning("port %d is taken; the virtual printer uses port %d",
                        FIRST_PRINTER_PORT, printer_port)
        log.info("created development config %s", config)
    _ensure_web_password(config, state_dir / PASSWORD_NAME)
    return config


def _ensure_web_password(config: Path, password_file: Path) -> None:
    """First run: a random web password, hashed into the config and kept for the developer."""
    if password_file.exists():
        log.info("web page password: see %s", password_file)
        return
    from usbprintd.web.cli import create_password

    password = create_password(str(config))
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")
    log.info("web page password (shown once, kept in %s): %s", password_file, password)
