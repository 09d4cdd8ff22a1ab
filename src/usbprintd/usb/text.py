"""Strings from printers, made safe for UCI, logs and mDNS."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Control characters (CR, LF, ESC, ...) become spaces, runs of spaces one, ends trimmed.

    USB string descriptors and 1284 IDs come from the printer's firmware; UCI refuses control
    characters, and the same cleaning on every read keeps a serial number matching its
    section after a replug."""
    return " ".join(_CONTROL.sub(" ", text).split())
