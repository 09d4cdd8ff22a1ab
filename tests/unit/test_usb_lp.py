"""usblp ioctl numbers for both CPU families, and the status byte."""

from __future__ import annotations

import pytest

from usbprintd.usb.lp import (
    GENERIC_LAYOUT,
    LPGETSTATUS,
    MIPS_PPC_LAYOUT,
    LpIoctls,
    decode_status,
    ioc,
    layout_for,
)


@pytest.mark.parametrize("machine", ["x86_64", "i686", "armv7l", "aarch64", "riscv64"])
def test_x86_and_arm_use_the_generic_encoding(machine):
    assert layout_for(machine) is GENERIC_LAYOUT


@pytest.mark.parametrize("machine", ["mips", "mipsel", "mips64", "ppc", "ppc64le", "sparc64"])
def test_mips_and_powerpc_use_three_direction_bits(machine):
    assert layout_for(machine) is MIPS_PPC_LAYOUT


# The numbers the kernel expects (linux drivers/usb/class/usblp.c, research table §1.5).
@pytest.mark.parametrize(("layout", "direction", "nr", "size", "number"), [
    (GENERIC_LAYOUT, "read", 1, 1024, 0x84005001),
    (GENERIC_LAYOUT, "read", 2, 8, 0x80085002),
    (GENERIC_LAYOUT, "write", 3, 0, 0x40005003),
    (GENERIC_LAYOUT, "read", 6, 8, 0x80085006),
    (GENERIC_LAYOUT, "none", 7, 0, 0x00005007),
    (MIPS_PPC_LAYOUT, "read", 1, 1024, 0x44005001),
    (MIPS_PPC_LAYOUT, "read", 2, 8, 0x40085002),
    (MIPS_PPC_LAYOUT, "write", 3, 0, 0x80005003),
    (MIPS_PPC_LAYOUT, "read", 6, 8, 0x40085006),
    (MIPS_PPC_LAYOUT, "none", 7, 0, 0x20005007),
])
def test_ioctl_numbers_match_the_kernel(layout, direction, nr, size, number):
    assert ioc(layout, direction, nr, size) == number


def test_the_daemons_ioctl_set_per_architecture():
    assert LpIoctls.for_layout(GENERIC_LAYOUT) == LpIoctls(0x84005001, 0x80085006, 0x060B)
    assert LpIoctls.for_layout(MIPS_PPC_LAYOUT) == LpIoctls(0x44005001, 0x40085006, 0x060B)
    assert LPGETSTATUS == 0x060B


def test_size_must_fit_the_field():
    ioc(MIPS_PPC_LAYOUT, "read", 1, 8191)
    with pytest.raises(ValueError):
        ioc(MIPS_PPC_LAYOUT, "read", 1, 8192)


@pytest.mark.parametrize(("status", "state"), [
    (0x18, "online"),  # selected, no error
    (0x30, "paper-out"),  # what the gadget's paper-empty looks like through usblp
    (0x38, "paper-out"),
    (0x10, "error"),  # error line active (low)
    (0x08, "offline"),  # not selected
    (0x28, "offline"),  # off-line wins over paper out, as in usblp_check_status()
    (0xD8, "online"),  # ack/busy bits mean nothing on USB
])
def test_status_byte_decoding(status, state):
    assert decode_status(status) == state
