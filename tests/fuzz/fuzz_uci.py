"""Coverage-guided fuzzing of the UCI file format: the owner's /etc/config/usbprintd (and an
imported /etc/config/p910nd), as the file store reads it, keeps it and edits it.

Each input is a file: read through the file store (bytes), parsed and kept byte for byte as a
document (text), turned into a config whose invariants hold and that reads back after a write,
imported as a p910nd file (once only), and edited with a small batch the input's last bytes
choose, checked against the reference model. Seeds: the shipped and development configs, a
hand-edited file, every quoting style libuci reads, and p910nd files (stock, hotplug, LuCI)."""

from __future__ import annotations

from collections.abc import Sequence

from harness import fuzz, instrumented, scratch_dir

with instrumented():
    from parser_properties import (
        check_config,
        check_document_keeps_text,
        check_edit,
        check_file_store_reads,
        check_p910nd_import,
        check_printers_read_back,
        check_settings_read_back,
        check_uci_text,
    )

    from usbprintd.uci import (
        AddSection,
        DeleteOption,
        DeleteSection,
        SetOption,
        UciChange,
        UciSection,
    )

SCRATCH = scratch_dir()
OPTIONS = ["port", "name", "enabled", "device"]
# Values the store must accept (libuci refuses line breaks and control characters).
VALUES: list[str | list[str]] = ["9101", "HP LaserJet 1018", "it's", "a\tb", "", "# no comment",
                                 "x\\y", '"', ["a", "b c"], []]
TYPES = ["printer", "usbprintd", "p910nd"]
EDIT_BYTES = 3


def edits_for(sections: Sequence[UciSection], selector: bytes) -> list[UciChange]:
    """One change per selector byte, on the sections the file holds (and some it does not)."""
    refs = [s.name for s in sections] + ["@printer[0]", "@printer[-1]", "main", "nosuch"]
    batch: list[UciChange] = []
    for byte in selector:
        ref, kind = refs[byte % len(refs)], byte >> 5
        if kind <= 3:
            batch.append(SetOption(ref, OPTIONS[kind], VALUES[(byte >> 2) % len(VALUES)]))
        elif kind == 4:
            batch.append(DeleteOption(ref, OPTIONS[byte & 3]))
        elif kind == 5:
            batch.append(AddSection(TYPES[byte % 3], ["", "main", "a"][(byte >> 2) % 3]))
        elif kind == 6:
            batch.append(DeleteSection(ref))
    return batch


def one_input(data: bytes) -> None:
    path = SCRATCH / "usbprintd"
    check_file_store_reads(path, data)
    text = data.decode("utf-8", "replace")  # the store refuses other bytes; the parser gets text
    check_document_keeps_text(text)
    sections = check_uci_text(text)
    if sections is None:
        return
    check_config(sections)
    check_p910nd_import(sections)  # the same text as /etc/config/p910nd
    check_printers_read_back(sections)
    check_settings_read_back(sections)
    check_edit(path, text, edits_for(sections, data[-EDIT_BYTES:]))


if __name__ == "__main__":
    fuzz(one_input)
