"""Reconcile decisions: only what changed is started, stopped or updated."""

from __future__ import annotations

from usbprintd.config import parse_config
from usbprintd.reconcile import Attachment, desired_targets, plan_changes
from usbprintd.uci import UciSection


def config(*printers: dict[str, str]):
    return parse_config([UciSection("printer", p.pop("name"), p) for p in printers])


def test_only_attached_printers_get_a_server_and_only_ready_ones_listen():
    cfg = config({"name": "a", "port": "9100"}, {"name": "b", "port": "9101"},
                 {"name": "c", "port": "9102", "enabled": "0"})
    targets = desired_targets(cfg, {"a": Attachment("/dev/usb/lp0"),
                                    "c": Attachment("/dev/usb/lp1"),
                                    "b": Attachment("/dev/usb/lp2", ready=False)})
    assert targets["a"].spec.accepting
    assert not targets["b"].spec.accepting  # needs firmware
    assert not targets["c"].spec.accepting  # disabled


def test_changing_one_printer_updates_only_that_printer():
    before = config({"name": "a", "port": "9100"}, {"name": "b", "port": "9101"})
    after = config({"name": "a", "port": "9100"}, {"name": "b", "port": "9105"})
    attached = {"a": Attachment("/dev/usb/lp0"), "b": Attachment("/dev/usb/lp1")}
    plan = plan_changes(desired_targets(before, attached), desired_targets(after, attached))
    assert (plan.stop, plan.start, plan.update) == ((), (), ("b",))


def test_replug_on_another_device_node_replaces_the_server():
    cfg = config({"name": "a", "port": "9100"})
    old = desired_targets(cfg, {"a": Attachment("/dev/usb/lp0")})
    new = desired_targets(cfg, {"a": Attachment("/dev/usb/lp1")})
    plan = plan_changes(old, new)
    assert (plan.stop, plan.start, plan.update) == (("a",), ("a",), ())


def test_unplug_stops_and_plug_starts():
    cfg = config({"name": "a", "port": "9100"})
    present = desired_targets(cfg, {"a": Attachment("/dev/usb/lp0")})
    assert plan_changes(present, {}).stop == ("a",)
    assert plan_changes({}, present).start == ("a",)
    assert plan_changes(present, present).empty
