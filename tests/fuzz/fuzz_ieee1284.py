"""Coverage-guided fuzzing of IEEE 1284 device IDs, which a printer's firmware writes.

Each input is used twice: as the raw GET_DEVICE_ID ioctl reply (length prefix, either byte
order, stale bytes after it) and as the ID text itself; the fields it parses into then name the
printer. Seeds: the IDs of the printers the tests model (HP LaserJet 1018 before and after its
firmware, Brother HL-L2350DW, the e2e gadget printer), as text and as ioctl replies."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    from parser_properties import (
        check_big_endian_reply,
        check_device_id_text,
        check_ioctl_reply,
        check_make_and_model,
    )


def one_input(data: bytes) -> None:
    check_ioctl_reply(data)
    text = data.decode("utf-8", "replace")
    parsed = check_device_id_text(text)
    maker, _, product = text.partition("\n")  # the USB strings, when the ID names no maker
    check_make_and_model(parsed, maker, product)
    check_big_endian_reply(text)


if __name__ == "__main__":
    fuzz(one_input)
