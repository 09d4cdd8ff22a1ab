"""Simulated USB printers for the guest: configfs gadget + usb_f_printer on dummy_hcd.

See tests/e2e/README.md for the API; `Printer` is the entry point.
"""

from .configfs import TooManyPrinters, UsbIdentity
from .printer import (
    Firmware,
    Printer,
    PrinterModel,
    UsbStack,
    generic_printer,
    hp_laserjet_1018,
    tail_may_stall,
)

__all__ = [
    "Firmware",
    "Printer",
    "PrinterModel",
    "TooManyPrinters",
    "UsbIdentity",
    "UsbStack",
    "generic_printer",
    "hp_laserjet_1018",
    "tail_may_stall",
]
