"""The daemon started with its printers already plugged in, as after a router boot or a daemon
restart: the start-up scan (not a hotplug event) finds them, each printer comes back on its own
port even when the kernel numbered the lp devices the other way round, and the idle memory of
a daemon with everything on is measured on the real USB stack."""

from __future__ import annotations

import statistics
import time

from daemon_process import free_port, port_accepts, wait_for
from printer_gadget import Printer, generic_printer
from scenario import OwnerView, check_routing, ports_by_identity, start, usb_printer, watching

RSS_SETTLE_SECONDS = 3  # zeroconf's first announcements are over by then
RSS_SANITY_MIB = 64  # a bound that catches a leak or a runaway import, not a target


def test_coldplug_on_configured_ports(printers, usbprintd):
    """Printers plugged in before the daemon starts are served on their configured ports: one
    known by its serial, one without a serial known by its USB port path."""
    with_serial = printers.new(generic_printer("COLD-1"), plug=True)
    without = printers.new(generic_printer(None), plug=True)
    port_serial, port_path = free_port(), free_port()
    owner = OwnerView.on_free_port()
    start(usbprintd,
          usb_printer("front", port_serial, usb_id="0525:a4a8", serial="COLD-1"),
          usb_printer("back", port_path, usb_id="0525:a4a8", usb_path=without.usb_device.name),
          **owner.options)
    for section, printer in (("front", with_serial), ("back", without)):
        entry = owner.wait_state(section, "serving", timeout=15)
        assert entry["device"] == str(printer.lp_path), entry
    check_routing([(with_serial, port_serial), (without, port_path)])


def identity_of(printer: Printer) -> str:
    """What its section is found by: the serial, or the USB port path when it has none."""
    return printer.model.identity.serial or printer.usb_device.name


def test_reboot_renumbered_keeps_ports(printers, usbprintd):
    """Four printers of one model (two with serials, two without) present at start: the daemon
    adds them, is stopped, and the printers come back in the opposite order, so every lp number
    changes and the two with serials also swap USB ports. The next start puts each printer on
    the port it had, from the configuration the first start wrote, without writing again."""
    fleet = [printers.new(generic_printer(serial)) for serial in ("SER-A", "SER-B", None, None)]
    alpha, beta, gamma, delta = fleet
    for printer in fleet:
        printer.plug()
    udc = {printer.name: printer.udc for printer in fleet}
    lp_before = {printer.name: printer.lp_path for printer in fleet}
    base = free_port()
    first = start(usbprintd, autoadd="1", base_port=str(base))
    wait_for(lambda: first.config_path.read_text().count("config printer") == len(fleet), 20)
    ports = ports_by_identity(first.config_path.read_text())
    assert sorted(ports.values()) == list(range(base, base + len(fleet))), ports
    routes = [(printer, ports[identity_of(printer)]) for printer in fleet]
    check_routing(routes)
    assert first.stop() == 0
    config = first.config_path.read_text()

    for printer in fleet:
        printer.unplug()
    delta.plug(udc[delta.name])  # no serial: the same USB ports as before
    gamma.plug(udc[gamma.name])
    beta.plug(udc[alpha.name])  # serials: each on the other's USB port
    alpha.plug(udc[beta.name])
    lp_after = {printer.name: printer.lp_path for printer in fleet}
    print(f"lp nodes before: {lp_before}; after: {lp_after}")
    assert all(lp_after[name] != lp_before[name] for name in lp_before)

    second = watching(usbprintd(config))
    check_routing(routes)
    assert second.config_path.read_text() == config  # nothing re-added: flash is precious


def idle_rss_of_a_served_usb_printer(printers, usbprintd, serial: str, mdns: bool) -> float:
    """Start the daemon with one USB printer and the web page on (and python-zeroconf too when
    `mdns`), prove the printer is served, let it settle, and return its median VmRSS in MiB."""
    printer = printers.new(generic_printer(serial), plug=True)
    port = free_port()
    owner = OwnerView.on_free_port()
    switch = "1" if mdns else "0"
    daemon = start(usbprintd, usb_printer("office", port, usb_id="0525:a4a8", serial=serial,
                                          bind="", mdns=switch),
                   mdns=switch, **owner.options)
    wait_for(lambda: port_accepts(port), 15)
    assert owner.wait_state("office", "serving")["device"] == str(printer.lp_path)
    check_routing([(printer, port)])
    announcer = daemon.wait_log(r"mDNS: announcing with ", timeout=15)
    if mdns:
        daemon.wait_log(r"mDNS: announcing Office", timeout=15)  # it did announce the printer
    time.sleep(RSS_SETTLE_SECONDS)
    samples = []
    for _ in range(3):
        samples.append(daemon.rss_kib() / 1024)
        time.sleep(0.5)
    print(f"idle VmRSS {', '.join(f'{s:.1f}' for s in samples)} MiB; {announcer}")
    assert daemon.alive
    return statistics.median(samples)


def test_idle_rss_usb_web(printers, usbprintd, figures):
    """The daemon's resident memory with one USB printer served and the web page on, once idle:
    the router's configuration (there umdns, a process of its own, announces the printers), which
    the host benchmark cannot measure (no USB)."""
    rss = idle_rss_of_a_served_usb_printer(printers, usbprintd, "RSS-1", mdns=False)
    figures.add("rss_idle_usb_web_mib", rss)
    assert rss < RSS_SANITY_MIB


def test_idle_rss_usb_web_mdns(printers, usbprintd, figures):
    """The same with python-zeroconf announcing the printer, as on a machine without umdns."""
    rss = idle_rss_of_a_served_usb_printer(printers, usbprintd, "RSS-2", mdns=True)
    figures.add("rss_idle_usb_web_mdns_mib", rss)
    assert rss < RSS_SANITY_MIB
