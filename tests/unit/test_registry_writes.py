"""The owner's writes (web page, autoadd) never make a damaged config file's loss permanent.

Printers here are USB printers that are not plugged in, so no server starts and the registry
runs without an event loop; the store is the real file store on a real file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from usbprintd.registry import Registry
from usbprintd.uci import FileStore, UciError

GOOD = """config usbprintd 'main'
\toption web_port '8631'
\toption auth 'password'

config printer 'office'
\toption name 'Office'
\toption usb_id '03f0:4117'
\toption serial 'A1'
\toption port '9100'

config printer 'lab'
\toption name 'Lab'
\toption usb_id '04f9:0042'
\toption serial 'B2'
\toption port '9101'
"""

DAMAGE: dict[str, Callable[[Path], object]] = {
    "truncated to nothing": lambda path: path.write_bytes(b""),
    "deleted": lambda path: path.unlink(),
    "garbage": lambda path: path.write_text("<html>404 Not Found</html>\n"),
    "cut inside a quote": lambda path: path.write_text(GOOD[: GOOD.index("'B2") + 2]),
}

WRITES: dict[str, Callable[[Registry], object]] = {
    "autoadd of a new printer": lambda registry: registry.add_printer(
        "New printer", {"usb_id": "1234:5678", "serial": "C3"}),
    "forget": lambda registry: registry.forget_printer("lab"),
    "printer settings": lambda registry: registry.update_printer("office", {"port": "9105"}),
    "global settings": lambda registry: registry.update_settings({"queue_limit": "3"}),
}


def loaded_registry(path: Path) -> Registry:
    path.write_text(GOOD)
    registry = Registry(FileStore(path))
    assert registry.reload()
    return registry


def outcome_of(write: Callable[[Registry], object], registry: Registry) -> str:
    try:
        result = write(registry)
    except UciError as err:  # add_printer reports a failed write this way
        return str(err)
    assert isinstance(result, dict), result
    return result.get("_", "")


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_onto_a_damaged_config_is_refused_and_leaves_file_and_printers_alone(
    tmp_path, damage, write
):
    path = tmp_path / "usbprintd"
    registry = loaded_registry(path)
    DAMAGE[damage](path)
    before = path.read_bytes() if path.exists() else None

    message = outcome_of(WRITES[write], registry)

    assert message.startswith("not saved: file ") and str(path) in message, message
    assert (path.read_bytes() if path.exists() else None) == before
    assert [p.section for p in registry.config.printers] == ["office", "lab"]
    assert registry.config.settings.web_port == 8631


def test_forgetting_the_only_printer_leaves_an_empty_file_that_later_writes_may_fill(tmp_path):
    path = tmp_path / "usbprintd"
    path.write_text("config printer 'only'\n\toption usb_id '03f0:4117'\n\toption port '9100'\n")
    registry = Registry(FileStore(path))
    assert registry.reload()

    assert registry.forget_printer("only") == {}
    assert registry.config.printers == ()
    assert registry.update_settings({"queue_limit": "3"}) == {}
    assert "option queue_limit '3'" in path.read_text()


def test_a_daemon_started_without_a_file_creates_it_on_first_write(tmp_path):
    path = tmp_path / "usbprintd"
    registry = Registry(FileStore(path))
    assert registry.reload()

    section = registry.add_printer("New printer", {"usb_id": "1234:5678", "serial": "C3"})

    assert f"config printer '{section}'" in path.read_text()
