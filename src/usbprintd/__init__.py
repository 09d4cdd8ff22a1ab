"""usbprintd: turns every USB printer on an OpenWrt router into a network printer."""

__version__ = "0.1.0"
