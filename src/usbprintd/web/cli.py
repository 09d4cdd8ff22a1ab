"""`usbprintd set-password`: the owner's password for auth 'password', stored as a hash.

Registered on every start of the command line, so this module imports nothing heavy itself
(hashlib would load OpenSSL into the daemon's memory).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

MIN_PASSWORD_LENGTH = 8


class PasswordRefused(Exception):
    pass


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "set-password", help="set the web page's password (used with auth 'password')")
    parser.add_argument("--config", help="UCI file (default: the 'usbprintd' UCI package)")
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of standard input")
    parser.set_defaults(handler=cmd_set_password)


def read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New web password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise PasswordRefused("the two passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRefused(f"use at least {MIN_PASSWORD_LENGTH} characters")
    return password


def password_changes(sections: list[Any], password_hash: str) -> list[Any]:
    """Set password_hash in the global section (creating the section if the file has none)."""
    from usbprintd.config import GLOBAL_NAME, GLOBAL_TYPE
    from usbprintd.uci import AddSection, SetOption

    section = next((s.name for s in sections if s.type == GLOBAL_TYPE), None)
    changes: list[Any] = []
    if section is None:
        section = GLOBAL_NAME
        changes.append(AddSection(GLOBAL_TYPE, section))
    changes.append(SetOption(section, "password_hash", password_hash))
    return changes


def create_password(config_path: str) -> str:
    """A random password for a development config: the hash goes into it, the password back.

    Runs in the process that then becomes the daemon, hence the built-in hashes."""
    from usbprintd.web import without_openssl_hashes

    without_openssl_hashes()
    import secrets

    from usbprintd.uci import open_store
    from usbprintd.web.passwords import hash_password

    password = secrets.token_urlsafe(12)
    store = open_store(config_path)
    store.apply(password_changes(store.load(), hash_password(password)))
    return password


def cmd_set_password(args: argparse.Namespace) -> int:
    from usbprintd.config import parse_config
    from usbprintd.uci import UciError, open_store
    from usbprintd.web.passwords import hash_password

    try:
        password = read_password(args.stdin)
    except PasswordRefused as err:
        print(f"usbprintd: password not set: {err}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("usbprintd: password not set", file=sys.stderr)
        return 1
    store = open_store(args.config)
    try:
        sections = store.load()
        store.apply(password_changes(sections, hash_password(password)))
    except (UciError, OSError) as err:
        print(f"usbprintd: password not saved: {err}", file=sys.stderr)
        return 1
    print(f"Password saved in {store.description}. A running daemon picks it up on reload "
          "(/etc/init.d/usbprintd reload, or SIGHUP).")
    auth = parse_config(sections).settings.auth
    if auth != "password":
        print(f"Note: the page uses auth '{auth}'; set \"option auth 'password'\" to use it.")
    return 0
