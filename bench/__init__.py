"""Benchmarks: usbprintd side by side with p910nd (make bench)."""
