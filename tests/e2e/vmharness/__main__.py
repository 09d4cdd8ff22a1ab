"""Command line: `python -m vmharness setup | shell | run [pytest args]` (from tests/e2e).

setup  fetch and trim the kernel, build the initramfs (what the test run does first anyway)
shell  boot the guest with an interactive root shell on this terminal
run    boot once and run pytest in the guest (default: tests/e2e/guest), print its output
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import qemu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmharness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("setup", "shell", "run"))
    parser.add_argument("--memory", default=qemu.MachineSpec.memory)
    parser.add_argument("--timeout", type=float, default=qemu.MachineSpec.timeout)
    parser.add_argument("--kver", default=qemu.MachineSpec.kver)
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = qemu.MachineSpec(memory=args.memory, timeout=args.timeout, kver=args.kver)

    if args.command == "setup":
        image, initramfs = qemu.prepare(spec)
        print(f"kernel {image.kver}: {image.vmlinux}\ninitramfs: {initramfs}")
        return 0
    if args.command == "shell":
        return qemu.run_shell(spec)
    run = qemu.run_guest_pytest(args.pytest_args or ["tests/e2e/guest"], spec)
    print(run.pytest_log or run.describe_failure())
    alarms = run.kernel_alarms()
    if alarms:
        print("kernel log alarms:\n" + "\n".join(alarms))
    uptime = run.guest_uptime("stage2")
    print(f"wall {run.wall_seconds:.1f} s, guest uptime at stage 2: {uptime} s, "
          f"results in {run.results_dir}")
    returncode = run.pytest_returncode
    return 1 if alarms or returncode is None else returncode


if __name__ == "__main__":
    sys.exit(main())
