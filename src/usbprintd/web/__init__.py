"""The LuCI-styled web page: status, printer settings, firmware and the JSON API behind them.

Imported only when the web page is enabled (web_port > 0): bottle and its imports cost RAM.
"""

from __future__ import annotations

import sys


def without_openssl_hashes() -> None:
    """Keep OpenSSL's libcrypto (about 3 MiB of RAM) out of a long-running daemon.

    bottle imports hashlib and hmac, and hashlib loads libcrypto, for hashes the page computes
    just as well with Python's built-in SHA-256: cookies are not signed, and PBKDF2 falls back
    to `passwords._pbkdf2_sha256_builtin`. OpenWrt's python3-light has no `_hashlib` at all, so
    this is also how the page runs on a router. Must run before anything imports hashlib.
    """
    if "hashlib" not in sys.modules:
        sys.modules.setdefault("_hashlib", None)  # type: ignore[arg-type]
