"""IEEE 1284 device IDs: the "MFG:…;MDL:…;CMD:…;" string a printer reports about itself.

Printers spell the keys in several ways; CUPS accepts the long forms and abbreviations listed in
`KEY_ALIASES`, case-insensitively and with surrounding spaces trimmed. `parse_device_id` returns
canonical upper-case keys so callers (names, mDNS TXT records, firmware checks) need not care.
"""

from __future__ import annotations

from usbprintd.usb.text import one_line

DEVICE_ID_MIN_LENGTH = 14  # CUPS rejects shorter length fields as garbage

KEY_ALIASES: dict[str, str] = {
    "MFG": "MFG",
    "MANUFACTURER": "MFG",
    "MFR": "MFG",
    "MDL": "MDL",
    "MODEL": "MDL",
    "CMD": "CMD",
    "COMMAND SET": "CMD",
    "CLS": "CLS",
    "CLASS": "CLS",
    "DES": "DES",
    "DESCRIPTION": "DES",
    "CID": "CID",
    "COMPATIBLE ID": "CID",
    "SN": "SN",
    "SERN": "SN",
    "SERIALNUMBER": "SN",
}


def canonical_key(key: str) -> str:
    """'Manufacturer ' -> 'MFG'; other keys are just upper-cased ('fwver' -> 'FWVER')."""
    upper = " ".join(key.split()).upper()
    return KEY_ALIASES.get(upper, upper)


def parse_device_id(text: str) -> dict[str, str]:
    """'MFG:HP;MDL:LaserJet 1018;' -> {'MFG': 'HP', 'MDL': 'LaserJet 1018'}.

    The first occurrence of a key wins (a later alias does not override it); pieces without a
    colon or with an empty key are ignored."""
    fields: dict[str, str] = {}
    for piece in text.split(";"):
        key, colon, value = piece.partition(":")
        key = canonical_key(key)
        if not colon or not key:
            continue
        fields.setdefault(key, value.strip())
    return fields


def decode_device_id(buffer: bytes) -> str:
    """The ID string from a GET_DEVICE_ID reply: a 2-byte length that counts itself, then text.

    The length is big-endian by the standard; some printers send it little-endian, which is
    detected the way CUPS does (an impossible big-endian value). A reply with no usable length
    yields ''."""
    if len(buffer) < 2:
        return ""
    length = int.from_bytes(buffer[:2], "big")
    if length > len(buffer) or length < DEVICE_ID_MIN_LENGTH:
        length = int.from_bytes(buffer[:2], "little")
    length = min(length, len(buffer))
    if length < DEVICE_ID_MIN_LENGTH:
        return ""
    text = buffer[2:length].split(b"\0", 1)[0]
    return text.decode("utf-8", errors="replace").strip()


def has_firmware_version(fields: dict[str, str]) -> bool:
    """Host-based HP LaserJets add FWVER to their ID once their firmware is running."""
    return bool(fields.get("FWVER"))


def make_and_model(fields: dict[str, str], manufacturer: str = "", product: str = "") -> str:
    """A human name such as 'HP LaserJet 1018', from the 1284 ID or else the USB strings.

    The model usually repeats the maker ('MFG:Hewlett-Packard;MDL:HP LaserJet 1018'), so the maker
    is prefixed only when the model does not already start with it."""
    maker = one_line(fields.get("MFG") or manufacturer)
    model = one_line(fields.get("MDL") or product)
    maker = _SHORT_MAKERS.get(maker.lower(), maker)
    if not model:
        return maker
    if not maker or model.lower().startswith(maker.lower()):
        return model
    return f"{maker} {model}"


_SHORT_MAKERS = {"hewlett-packard": "HP", "hewlett packard": "HP"}
