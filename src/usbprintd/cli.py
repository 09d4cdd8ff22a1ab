"""Command line: `usbprintd run` (the daemon) and the owner's helper commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from usbprintd import __version__
from usbprintd.config import LOG_LEVELS
from usbprintd.eventlog import EventLog

log = logging.getLogger("usbprintd")

Command = Callable[[argparse.Namespace], int]


def setup_logging(level: str | None, timestamps: bool) -> EventLog:
    """Log to stderr (procd forwards it to logd) and into the in-memory event ring."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if timestamps:
        fmt = "%(asctime)s " + fmt
    # Thread, process and multiprocessing names are never logged: skip collecting them.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    events = EventLog()
    root = logging.getLogger()
    root.handlers[:] = [handler, events]
    root.setLevel(logging.WARNING)
    logging.getLogger("usbprintd").setLevel((level or "info").upper())
    return events


def _open_store(path: str | None):
    from usbprintd.uci import open_store

    return open_store(path)


def _without_tls() -> None:
    """The daemon never speaks TLS, yet asyncio and http.client import ssl when they can,
    which costs about 4 MiB of RAM on a router. Marking it absent makes them skip it."""
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]


def _raise_file_limit() -> None:
    """Each queued client holds a descriptor; use all the kernel allows so a crowd of waiting
    clients cannot leave none for opening the printer itself."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as err:
            log.debug("file limit stays at %d: %s", soft, err)


def _run_daemon(config: str | None, events: EventLog, log_level: str | None) -> int:
    _without_tls()
    _raise_file_limit()
    import asyncio

    from usbprintd.daemon import Daemon

    try:
        return asyncio.run(Daemon(_open_store(config), events, log_level=log_level).run())
    except KeyboardInterrupt:
        return 0


def cmd_run(args: argparse.Namespace) -> int:
    events = setup_logging(args.log_level, timestamps=args.timestamps)
    return _run_daemon(args.config, events, args.log_level)


def cmd_dev(args: argparse.Namespace) -> int:
    from usbprintd.devsetup import prepare_state_dir

    events = setup_logging(args.log_level, timestamps=True)
    config = prepare_state_dir(Path(args.state_dir))
    log.info("development mode: config %s (edit it and send SIGHUP, or use the web page)",
             config)
    return _run_daemon(str(config), events, args.log_level)


def cmd_import_p910nd(args: argparse.Namespace) -> int:
    from usbprintd.p910nd_import import run_import
    from usbprintd.uci import UciError

    setup_logging("info", timestamps=False)
    try:
        notes = run_import(args.source, _open_store(args.config))
    except (UciError, OSError) as err:
        print(f"usbprintd: import failed: {err}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usbprintd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"usbprintd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the print server in the foreground")
    run.add_argument("--config", help="UCI file (default: the 'usbprintd' UCI package)")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="overrides the config's log_level")
    run.add_argument("--timestamps", action="store_true", help="prefix log lines with the time")
    run.set_defaults(handler=cmd_run)

    dev = commands.add_parser("dev", help="development mode with a virtual printer (make run)")
    dev.add_argument("--state-dir", default=".state")
    dev.add_argument("--log-level", choices=LOG_LEVELS, help="overrides the config's log_level")
    dev.set_defaults(handler=cmd_dev)

    imp = commands.add_parser("import-p910nd", help="add printers from a p910nd UCI config")
    imp.add_argument("--from", dest="source", default="/etc/config/p910nd")
    imp.add_argument("--config", help="UCI file to add them to")
    imp.set_defaults(handler=cmd_import_p910nd)

    for register in EXTRA_COMMANDS:
        register(commands)
    return parser


def _register_web_commands(commands: argparse._SubParsersAction) -> None:
    try:
        from usbprintd.web.cli import register
    except ModuleNotFoundError:
        return
    register(commands)


# Commands contributed by optional parts of the package.
EXTRA_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _register_web_commands,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    return handler(args)
